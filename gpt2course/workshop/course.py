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

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

from gpt2course.files import atomic_path

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
    Notebook(
        "09_from_gpt2_to_chatgpt", "From GPT-2 to ChatGPT: a chat format and instruction tuning"
    ),
    Notebook(
        "10_rlhf_in_miniature", "RLHF in miniature: a reward model, RL with a KL penalty, DPO"
    ),
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
    path = notebook_path(nb, version).relative_to(repo_root()).as_posix()
    return f"https://colab.research.google.com/github/{github_slug()}/blob/{BRANCH}/{path}"


def colab_badge(nb: Notebook, version: str = "learner") -> str:
    """Markdown for the 'Open in Colab' badge."""
    img = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({img})]({colab_url(nb, version)})"


def install_line() -> str:
    """The pip requirement that installs the course package from the repository."""
    return f"gpt2course @ git+{REPO_URL}@{BRANCH}"


# Where the Colab header keeps the learner's pieces, once Google Drive is mounted.
DRIVE_WORKBENCH = "/content/drive/MyDrive/gpt2course-workbench"


def header_cells(nb: Notebook, version: str) -> list[dict]:
    """The badge cell and the Colab install cell that every notebook starts with."""
    md = f"{colab_badge(nb, version)}\n\n# {nb.title}"
    if nb.gpu:
        md += "\n\nThis notebook is faster on a GPU: in Colab, "
        md += "*Runtime → Change runtime type → T4 GPU*."
    # Plain pip through subprocess, not %pip: %pip prints a failure and carries on, and the
    # learner meets it two cells later as a ModuleNotFoundError.
    code = (
        "# Colab only: install the course package (everything else it needs, Colab already has)\n"
        "# and keep your pieces on Google Drive.\n"
        "import os\n"
        "import sys\n"
        "\n"
        "# Colab gives each notebook its own machine, so the pieces you write (your workbench) reach\n"
        "# the next notebooks only from Google Drive. True: ask for your permission to mount it.\n"
        "KEEP_MY_PIECES_ON_DRIVE = True\n"
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
        "    if KEEP_MY_PIECES_ON_DRIVE:\n"
        "        from google.colab import drive\n"
        "\n"
        "        try:\n"
        '            if not os.path.isdir("/content/drive/MyDrive"):\n'
        '                drive.mount("/content/drive")  # Google asks you; you may say no\n'
        f'            os.environ.setdefault("GPT2COURSE_WORKBENCH", "{DRIVE_WORKBENCH}")\n'
        '            print("Your pieces are kept on Google Drive:", os.environ["GPT2COURSE_WORKBENCH"])\n'
        "        except Exception as e:  # declined, or Drive is not available\n"
        "            print(\n"
        '                f"Google Drive is not mounted ({e}): your pieces are kept on this machine, "\n'
        '                "for this notebook only. Run this cell again to be asked again."\n'
        "            )\n"
        "    else:\n"
        '        print("Your pieces are kept on this machine, for this notebook only.")'
    )
    return [_cell("markdown", md), _cell("code", code)]


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": source}
    return cell | ({"execution_count": None, "outputs": []} if kind == "code" else {})


def parse_source(text: str) -> list[tuple[str, str, list[str]]]:
    """Split a percent-format source into (kind, source, tags) cells."""
    cells: list[tuple[str, list[str], list[str]]] = []
    for line in text.splitlines():
        if m := CELL.match(line):
            kind = "markdown" if m.group("markdown") else "code"
            cells.append((kind, [], m.group("tags").split()))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
    for kind, lines, _ in cells:
        for i, line in enumerate(lines if kind == "markdown" else []):
            if not (line.startswith("# ") or line.strip() in ("#", "")):
                raise ValueError(f"markdown lines must start with '# ': {line!r}")
            lines[i] = line[2:] if line.startswith("# ") else ""
    return [(kind, "\n".join(lines).strip("\n"), tags) for kind, lines, tags in cells]


def strip_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block by a stub that raises NotImplementedError.

    ``# HINT:`` comment lines inside the block are kept for the learner.
    """
    out: list[str] = []
    indent = None  # inside a solution: the indentation of its BEGIN line
    for line in source.splitlines():
        if m := BEGIN.match(line):
            if indent is not None:
                raise ValueError("nested '# BEGIN SOLUTION'")
            indent = m.group(1)
        elif END.match(line):
            if indent is None:
                raise ValueError("'# END SOLUTION' without '# BEGIN SOLUTION'")
            out.append(f"{indent}# Your code here.")
            out.append(
                f'{indent}raise NotImplementedError("Exercise not done yet: write it, '
                'then run the check below.")'
            )
            indent = None
        elif indent is None:
            out.append(line)
        elif line.strip().startswith("# HINT:"):
            out.append(indent + line.strip())
    if indent is not None:
        raise ValueError("'# BEGIN SOLUTION' without '# END SOLUTION'")
    return "\n".join(out)


def keep_solutions(source: str) -> str:
    """Drop the BEGIN/END SOLUTION marker lines and keep what is between them."""
    return "\n".join(
        line for line in source.splitlines() if not (BEGIN.match(line) or END.match(line))
    )


# A learner's time at the desk, before any machine time: prose read at about 130 words a
# minute (technical text, read with the code beside it), and each exercise 5 minutes plus
# one per line of its solution, at most 20 (reading the task, writing, a failed check, a fix).
WORDS_PER_MINUTE = 130


@dataclass(frozen=True)
class Estimate:
    """What a learner reads and writes in one notebook, and the minutes that take."""

    words: int
    exercise_lines: tuple[int, ...]

    @property
    def reading(self) -> float:
        return self.words / WORDS_PER_MINUTE

    @property
    def exercises(self) -> float:
        return float(sum(min(20, 5 + n) for n in self.exercise_lines))

    @property
    def minutes(self) -> float:
        return self.reading + self.exercises


def estimate(nb: Notebook) -> Estimate:
    """The learner's desk time in notebook ``nb``: its prose and its exercises."""
    words, lines = 0, []
    for kind, src, tags in parse_source(source_path(nb).read_text(encoding="utf-8")):
        if "instructor" in tags:
            continue
        if kind == "markdown":
            words += len(re.findall(r"[A-Za-z0-9][\w'’-]*", src))
            continue
        inside = None
        for line in src.splitlines():
            if BEGIN.match(line):
                inside = 0
            elif END.match(line):
                lines.append(inside)
                inside = None
            elif inside is not None and line.strip() and not line.strip().startswith("#"):
                inside += 1
    return Estimate(words, tuple(lines))


def build_notebook(nb: Notebook, version: str, source_text: str) -> dict:
    """The notebook (nbformat 4 dict, no outputs) of one version of one source."""
    cells = header_cells(nb, version)
    # Optional notes (timings, goals, where learners stall) shown atop the instructor version.
    notes = repo_root() / "notebooks" / "instructor_notes" / f"{nb.slug}.md"
    if version == "instructor" and notes.exists():
        cells.append(_cell("markdown", notes.read_text(encoding="utf-8").strip()))
    for kind, src, tags in parse_source(source_text):
        if not src or ("instructor" in tags and version != "instructor"):
            continue
        if kind == "code":
            src = strip_solutions(src) if version == "learner" else keep_solutions(src)
        cells.append(_cell(kind, src, [t for t in tags if t != "instructor"]))
        for key in [t.removeprefix("record:") for t in tags if t.startswith("record:")]:
            # Shows, after a record:KEY cell, what it gave at full size.
            shown = (
                "# What the cell above gave at the default, full-size settings, recorded with\n"
                f"# `python -m gpt2course notebooks record {nb.slug[:2]}` (see gpt2course.recorded).\n"
                f'from gpt2course import recorded\n\nrecorded.show("{nb.slug}", "{key}")'
            )
            cells.append(_cell("code", shown))
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


def find(slug_or_prefix: str) -> Notebook:
    """A notebook by slug or by its number ('03')."""
    for nb in NOTEBOOKS:
        if nb.slug == slug_or_prefix or nb.slug.startswith(slug_or_prefix + "_"):
            return nb
    raise KeyError(f"no notebook {slug_or_prefix!r}; known: {', '.join(n.slug for n in NOTEBOOKS)}")


def cells_signature(notebook: dict) -> list[tuple[str, str, list[str]]]:
    """What the generator decides about a notebook: each cell's kind, source and tags."""
    return [
        (cell["cell_type"], cell_source(cell), cell.get("metadata", {}).get("tags", []))
        for cell in notebook["cells"]
    ]


def cell_source(cell: dict) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def execute(notebook: dict, cwd: Path, timeout: int = 600, quick: bool = True) -> dict:
    """Run a notebook top to bottom (in quick mode unless told) and return it with outputs.

    A NotebookNode is run in place, so a caller that catches a failing cell keeps the cells
    that ran."""
    import nbformat
    from nbclient import NotebookClient

    node = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.from_dict(notebook)
    # The kernel inherits these; a progress bar would leave its fragments in the outputs.
    env = {"GPT2COURSE_QUICK": "1" if quick else "0", "GPT2COURSE_PROGRESS": "0"}
    with patch.dict(os.environ, env):
        NotebookClient(
            node, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        ).execute()
    return node


def build(slugs: list[str] | None = None, execute_cells: bool = False) -> list[Path]:
    """Generate the notebooks of the given sources (all by default); optionally run them."""
    import nbformat

    written = []
    todo = (
        [find(s) for s in slugs] if slugs else [nb for nb in NOTEBOOKS if source_path(nb).exists()]
    )
    for nb in todo:
        text = source_path(nb).read_text(encoding="utf-8")
        ran: dict[str, dict] = {}
        for version in VERSIONS:  # learner, solutions, instructor: in that order
            notebook = build_notebook(nb, version, text)
            path = notebook_path(nb, version)
            if execute_cells and version != "instructor":
                print(f"running {path.relative_to(repo_root())} ...", file=sys.stderr, flush=True)
                notebook = ran[version] = execute(notebook, cwd=path.parent)
            elif execute_cells:
                # The instructor version is the solutions plus notes: it shows their outputs,
                # so an instructor previewing it on GitHub sees the results.
                copy_outputs(ran["solutions"], notebook)
            with atomic_path(path) as tmp:  # written the way nbformat does: stable diffs
                nbformat.write(nbformat.from_dict(notebook), str(tmp))
            written.append(path)
    return written


def copy_outputs(source: dict, target: dict) -> None:
    """Give ``target``'s code cells the outputs of ``source``'s cells with the same code, in order."""
    ran = [c for c in source["cells"] if c["cell_type"] == "code"]
    i = 0
    for cell in (c for c in target["cells"] if c["cell_type"] == "code"):
        same = [j for j in range(i, len(ran)) if cell_source(ran[j]) == cell_source(cell)]
        if same:
            i = same[0] + 1
            cell["outputs"] = ran[same[0]]["outputs"]
            cell["execution_count"] = ran[same[0]]["execution_count"]


def set_repo(url: str) -> None:
    """Point every badge, install cell and link at another repository URL."""
    github_slug(url)  # validate
    global REPO_URL
    here = Path(__file__)
    text = here.read_text(encoding="utf-8")
    text = re.sub(r'^REPO_URL = ".*"$', f'REPO_URL = "{url}"', text, count=1, flags=re.M)
    here.write_text(text, encoding="utf-8")
    old, REPO_URL = REPO_URL, url
    root = repo_root()
    names = ["pyproject.toml", "environment.yml", "README.md"]
    for f in [*(root / name for name in names), *root.glob("docs/*.md")]:
        if f.exists():
            f.write_text(f.read_text(encoding="utf-8").replace(old, url), encoding="utf-8")
    write_readme_table()
    # Only the header cells change: keep each notebook's outputs.
    import nbformat

    for nb in NOTEBOOKS:
        for version in VERSIONS:
            path = notebook_path(nb, version)
            if path.exists():
                node = nbformat.read(str(path), as_version=4)
                for cell, fresh in zip(node.cells, header_cells(nb, version), strict=False):
                    cell.source = fresh["source"]
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


def write_readme_table() -> None:
    """Regenerate the README's notebook list between its markers."""
    readme = repo_root() / "README.md"
    text = readme.read_text(encoding="utf-8")
    a, b = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:a] + "\n" + readme_table() + "\n" + text[b:], encoding="utf-8")


def stale_notebooks() -> list[str]:
    """The committed notebooks whose cells differ from what their source makes."""
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
