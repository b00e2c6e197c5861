"""The course's notebooks: their order, the repository URL, and the generator.

Every notebook has one source, ``notebooks/src/NN_name.py``, in the "percent" format
(``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines start
with ``# ``). Exercise solutions sit between ``# BEGIN SOLUTION`` and ``# END SOLUTION``.
From each source the generator writes three notebooks:

- ``notebooks/NN_name.ipynb``: the learner's version; each solution is replaced by a stub
  that raises ``NotImplementedError``, and the checks fall back to the reference.
- ``notebooks/solutions/NN_name.ipynb``: the same notebook with the solutions in.
- ``notebooks/instructor/NN_name.ipynb``: the solutions plus the cells marked
  ``instructor`` (timings, live-coding notes).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# The one place the repository URL stands. `python -m gpt2course notebooks set-repo URL`
# rewrites it here and regenerates everything that shows it (badges, install cells, README).
REPO_URL = "https://github.com/gpt2course/gpt2course"
BRANCH = "main"


@dataclass(frozen=True)
class Notebook:
    slug: str
    title: str
    gpu: bool = False


NOTEBOOKS: list[Notebook] = [
    Notebook("00_setup", "Setup: how the course works and an environment check"),
    Notebook("01_tokenization", "Tokenization: byte-level BPE from scratch"),
    Notebook("02_data_and_embeddings", "From tokens to training windows and embeddings"),
    Notebook(
        "03_attention", "Attention, from a dot product to GPT-2's causal multi-head attention"
    ),
    Notebook("04_transformer_block", "The transformer block: LayerNorm, GELU, MLP, residuals"),
    Notebook("05_gpt2_and_generation", "The whole GPT-2, and generating text with a KV cache"),
    Notebook("06_pretraining", "Pretraining a small GPT on Tiny Shakespeare", gpu=True),
    Notebook("07_pretrained_gpt2", "The real GPT-2: loading OpenAI's weights", gpu=True),
    Notebook("08_finetuning", "Fine-tuning GPT-2 on your own text, with LoRA", gpu=True),
    Notebook("09_from_gpt2_to_chatgpt", "From GPT-2 to ChatGPT: instruction tuning in miniature"),
]

VERSIONS = {"learner": "", "solutions": "solutions", "instructor": "instructor"}

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\b.*$")
END = re.compile(r"^\s*# END SOLUTION\b.*$")
CELL = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?P<tags>.*)$")


def repo_root() -> Path:
    """The repository checkout this package was imported from."""
    return Path(__file__).resolve().parents[2]


def github_slug(url: str | None = None) -> str:
    """'owner/name' from a GitHub URL (the course's own by default)."""
    url = url or REPO_URL  # read now, not at import: set_repo changes it
    m = re.match(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?$", url)
    if not m:
        raise ValueError(f"not a GitHub repository URL: {url!r}")
    return m.group(1)


def colab_url(nb: Notebook, version: str = "learner") -> str:
    """The 'Open in Colab' link of one notebook version."""
    sub = VERSIONS[version]
    path = f"notebooks/{sub + '/' if sub else ''}{nb.slug}.ipynb"
    return f"https://colab.research.google.com/github/{github_slug()}/blob/{BRANCH}/{path}"


def colab_badge(nb: Notebook, version: str = "learner") -> str:
    """Markdown for the 'Open in Colab' badge."""
    img = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({img})]({colab_url(nb, version)})"


def install_line() -> str:
    """The pip requirement that installs the course package from the repository."""
    return f"gpt2course @ git+{REPO_URL}@{BRANCH}"


def header_cells(nb: Notebook, version: str) -> list[dict]:
    """The badge cell and the Colab install cell that every notebook starts with."""
    badge = colab_badge(nb, version)
    gpu = (
        "\n\nThis notebook is faster on a GPU: in Colab, *Runtime → Change runtime type → T4 GPU*."
        if nb.gpu
        else ""
    )
    md = f"{badge}\n\n# {nb.title}{gpu}"
    # Plain pip through subprocess, not %pip: %pip prints a failure and carries on, and the
    # learner meets it two cells later as a ModuleNotFoundError.
    code = (
        "# Colab only: install the course package. Everything else it needs, Colab already has.\n"
        "import os\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        f'    pip = [sys.executable, "-m", "pip", "install", "-q", "{install_line()}"]\n'
        "    result = subprocess.run(pip, capture_output=True, text=True)\n"
        "    if result.returncode != 0:\n"
        '        print(result.stdout[-2000:], result.stderr[-2000:], sep="\\n")\n'
        "        raise RuntimeError(\n"
        f'            "could not install the course package from {REPO_URL} (pip says why above): "\n'
        '            "check that this runtime is online and that the repository URL is right, "\n'
        '            "then run this cell again"\n'
        "        )\n"
        "    # Colab gives each notebook its own machine; with Google Drive mounted, the pieces\n"
        "    # you write are kept on it and reach the next notebook (gpt2course.workbench).\n"
        '    if os.path.isdir("/content/drive/MyDrive"):\n'
        '        os.environ.setdefault("GPT2COURSE_WORKBENCH", "/content/drive/MyDrive/gpt2course-workbench")'
    )
    return [_cell("markdown", md), _cell("code", code)]


def recorded_cell(nb: Notebook, key: str) -> str:
    """The cell that shows, after a ``record:KEY`` cell, what it gave at full size."""
    return (
        "# What the cell above gave at the default, full-size settings, recorded with\n"
        f"# `python -m gpt2course notebooks record {nb.slug[:2]}` (see gpt2course.recorded).\n"
        "from gpt2course import recorded\n"
        "\n"
        f'recorded.show("{nb.slug}", "{key}")'
    )


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if tags:
        cell["metadata"]["tags"] = tags
    if kind == "code":
        cell["execution_count"] = None
        cell["outputs"] = []
    return cell


def parse_source(text: str) -> list[tuple[str, str, list[str]]]:
    """Split a percent-format source into (kind, source, tags) cells."""
    cells: list[tuple[str, list[str], list[str]]] = []
    current: tuple[str, list[str], list[str]] | None = None
    for line in text.splitlines():
        m = CELL.match(line)
        if m:
            kind = "markdown" if m.group("markdown") else "code"
            tags = m.group("tags").split()
            current = (kind, [], tags)
            cells.append(current)
            continue
        if current is None:
            if line.strip():
                raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
            continue
        current[1].append(line)
    out = []
    for kind, lines, tags in cells:
        if kind == "markdown":
            lines = [_unmark(line) for line in lines]
        src = "\n".join(lines).strip("\n")
        out.append((kind, src, tags))
    return out


def _unmark(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    if line.strip() in ("#", ""):
        return ""
    raise ValueError(f"markdown lines must start with '# ': {line!r}")


def strip_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block by a stub that raises NotImplementedError.

    ``# HINT:`` comment lines inside the block are kept for the learner.
    """
    out: list[str] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if not m:
            if END.match(lines[i]):
                raise ValueError("'# END SOLUTION' without '# BEGIN SOLUTION'")
            out.append(lines[i])
            i += 1
            continue
        indent = m.group(1)
        j = i + 1
        hints = []
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise ValueError("nested '# BEGIN SOLUTION'")
            if lines[j].strip().startswith("# HINT:"):
                hints.append(indent + lines[j].strip())
            j += 1
        if j == len(lines):
            raise ValueError("'# BEGIN SOLUTION' without '# END SOLUTION'")
        out.extend(hints)
        out.append(f"{indent}# Your code here.")
        out.append(
            f'{indent}raise NotImplementedError("Exercise not done yet: write it, '
            'then run the check below.")'
        )
        i = j + 1
    return "\n".join(out)


def keep_solutions(source: str) -> str:
    """Drop the BEGIN/END SOLUTION marker lines and keep what is between them."""
    return "\n".join(
        line for line in source.splitlines() if not (BEGIN.match(line) or END.match(line))
    )


def build_notebook(nb: Notebook, version: str, source_text: str) -> dict:
    """The notebook (nbformat 4 dict, no outputs) of one version of one source."""
    cells = header_cells(nb, version)
    notes = instructor_notes_path(nb)
    if version == "instructor" and notes.exists():
        cells.append(_cell("markdown", notes.read_text(encoding="utf-8").strip()))
    for kind, src, tags in parse_source(source_text):
        if not src or ("instructor" in tags and version != "instructor"):
            continue
        if kind == "code":
            src = strip_solutions(src) if version == "learner" else keep_solutions(src)
        cells.append(_cell(kind, src, [t for t in tags if t != "instructor"]))
        for tag in tags:
            if tag.startswith("record:"):
                cells.append(_cell("code", recorded_cell(nb, tag.removeprefix("record:"))))
    metadata: dict = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if nb.gpu:
        metadata["accelerator"] = "GPU"
        metadata["colab"] = {"provenance": [], "gpuType": "T4"}
    for i, cell in enumerate(cells):
        cell["id"] = f"{nb.slug[:2]}-{version[0]}-{i:03d}"
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def notebook_path(nb: Notebook, version: str, root: Path | None = None) -> Path:
    """Where one version of a notebook is committed."""
    return (root or repo_root()) / "notebooks" / VERSIONS[version] / f"{nb.slug}.ipynb"


def source_path(nb: Notebook, root: Path | None = None) -> Path:
    """The one source of a notebook."""
    return (root or repo_root()) / "notebooks" / "src" / f"{nb.slug}.py"


def instructor_notes_path(nb: Notebook, root: Path | None = None) -> Path:
    """Optional notes (timings, goals, where learners stall) shown atop the instructor version."""
    return (root or repo_root()) / "notebooks" / "instructor_notes" / f"{nb.slug}.md"


def find(slug_or_prefix: str) -> Notebook:
    """A notebook by slug or by its number ('03')."""
    for nb in NOTEBOOKS:
        if nb.slug == slug_or_prefix or nb.slug.startswith(slug_or_prefix + "_"):
            return nb
    raise KeyError(f"no notebook {slug_or_prefix!r}; known: {', '.join(n.slug for n in NOTEBOOKS)}")


def cells_signature(notebook: dict) -> list[tuple[str, str, list[str]]]:
    """What the generator decides about a notebook: each cell's kind, source and tags."""
    out = []
    for cell in notebook["cells"]:
        src = cell["source"]
        if isinstance(src, list):
            src = "".join(src)
        out.append((cell["cell_type"], src, cell.get("metadata", {}).get("tags", [])))
    return out


def execute(notebook: dict, cwd: Path, timeout: int = 600, quick: bool = True) -> dict:
    """Run a notebook top to bottom (in quick mode unless told) and return it with outputs.

    A NotebookNode is run in place, so a caller that catches a failing cell keeps the cells
    that ran."""
    import nbformat
    from nbclient import NotebookClient

    node = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.from_dict(notebook)
    saved = os.environ.get("GPT2COURSE_QUICK")
    os.environ["GPT2COURSE_QUICK"] = "1" if quick else "0"  # the kernel inherits it
    try:
        NotebookClient(
            node, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        ).execute()
    finally:
        if saved is None:
            os.environ.pop("GPT2COURSE_QUICK", None)
        else:
            os.environ["GPT2COURSE_QUICK"] = saved
    return node


def write_notebook(notebook: dict, path: Path) -> None:
    """Write a notebook the way nbformat does (stable diffs)."""
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    node = nbformat.from_dict(notebook)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(node, str(tmp))
    tmp.replace(path)


def build(
    slugs: list[str] | None = None, execute_cells: bool = False, versions: list[str] | None = None
) -> list[Path]:
    """Generate the notebooks of the given sources (all by default); optionally run them."""
    written = []
    todo = (
        [find(s) for s in slugs] if slugs else [nb for nb in NOTEBOOKS if source_path(nb).exists()]
    )
    for nb in todo:
        text = source_path(nb).read_text(encoding="utf-8")
        for version in versions or list(VERSIONS):
            notebook = build_notebook(nb, version, text)
            path = notebook_path(nb, version)
            if execute_cells and version != "instructor":
                print(f"running {path.relative_to(repo_root())} ...", file=sys.stderr, flush=True)
                notebook = execute(notebook, cwd=path.parent)
            write_notebook(notebook, path)
            written.append(path)
    return written


def set_repo(url: str) -> None:
    """Point every badge, install cell and link at another repository URL."""
    github_slug(url)  # validate
    global REPO_URL
    here = Path(__file__)
    text = here.read_text(encoding="utf-8")
    text = re.sub(r'^REPO_URL = ".*"$', f'REPO_URL = "{url}"', text, count=1, flags=re.M)
    here.write_text(text, encoding="utf-8")
    old = REPO_URL
    REPO_URL = url
    root = repo_root()
    for f in [
        root / "pyproject.toml",
        root / "environment.yml",
        root / "README.md",
        *root.glob("docs/*.md"),
    ]:
        if f.exists():
            f.write_text(f.read_text(encoding="utf-8").replace(old, url), encoding="utf-8")
    write_readme_table()
    # Only the header cells change: keep each notebook's outputs.
    import nbformat

    for nb in NOTEBOOKS:
        for version in VERSIONS:
            path = notebook_path(nb, version)
            if not path.exists():
                continue
            node = nbformat.read(str(path), as_version=4)
            fresh = header_cells(nb, version)
            node.cells[0].source = fresh[0]["source"]
            node.cells[1].source = fresh[1]["source"]
            nbformat.write(node, str(path))


README_START = "<!-- notebooks:start -->"
README_END = "<!-- notebooks:end -->"


def readme_table() -> str:
    """The README's list of notebooks, with a Colab badge each."""
    rows = ["| # | notebook | open |", "| --- | --- | --- |"]
    for nb in NOTEBOOKS:
        gpu = " (GPU helps)" if nb.gpu else ""
        rows.append(
            f"| {nb.slug[:2]} | [{nb.title}](notebooks/{nb.slug}.ipynb){gpu} | {colab_badge(nb)} |"
        )
    return "\n".join(rows)


def write_readme_table(readme: Path | None = None) -> None:
    """Regenerate the README's notebook list between its markers."""
    readme = readme or repo_root() / "README.md"
    text = readme.read_text(encoding="utf-8")
    a, b = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:a] + "\n" + readme_table() + "\n" + text[b:], encoding="utf-8")


def stale_notebooks() -> list[str]:
    """The committed notebooks whose cells differ from what their source makes."""
    import json

    problems = []
    for nb in NOTEBOOKS:
        src = source_path(nb)
        if not src.exists():
            problems.append(f"{src.relative_to(repo_root())}: missing source")
            continue
        text = src.read_text(encoding="utf-8")
        for version in VERSIONS:
            path = notebook_path(nb, version)
            if not path.exists():
                problems.append(f"{path.relative_to(repo_root())}: not generated")
                continue
            want = cells_signature(build_notebook(nb, version, text))
            have = cells_signature(json.loads(path.read_text(encoding="utf-8")))
            if want != have:
                problems.append(f"{path.relative_to(repo_root())}: differs from its source")
    return problems
