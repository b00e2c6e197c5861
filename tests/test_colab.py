"""Colab readiness: badges, install cells and GPU metadata, all from the one repository URL.

The generator writes a badge and a Colab-only install cell atop every notebook; these
tests read the committed notebooks and the README the way Colab and a reader would, and
check that every link is built from ``course.REPO_URL`` and points at a file that exists.
``notebooks set-repo`` is tried on a copy of the repository, never on this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from gpt2course.workshop import course

ROOT = course.repo_root()
COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<slug>[^/\s)]+/[^/\s)]+)"
    r"/blob/(?P<branch>[^/\s)]+)/(?P<path>[^\s)]+\.ipynb)"
)
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
# What Colab ships (Nov 2026): installing the course must leave these alone.
COLAB_HAS = {"python": "3.13", "torch": "2.11.0", "ipywidgets": "7.7.1"}

GENERATED = [
    (nb, version, course.notebook_path(nb, version))
    for nb in course.NOTEBOOKS
    for version in course.VERSIONS
    if course.notebook_path(nb, version).exists()
]
IDS = [f"{nb.slug}-{version}" for nb, version, _ in GENERATED]


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_some_notebooks_are_generated() -> None:
    assert GENERATED, "no generated notebooks: run `python -m gpt2course notebooks build`"


@pytest.mark.parametrize(("nb", "version", "path"), GENERATED, ids=IDS)
def test_notebook_opens_with_its_own_badge(nb: course.Notebook, version: str, path: Path) -> None:
    """The first cell's badge opens this very file of this repository in Colab."""
    first = _read(path)["cells"][0]
    assert first["cell_type"] == "markdown"
    text = _source(first)
    assert BADGE_IMG in text, f"{path.name}: no 'Open in Colab' badge in the first cell"
    links = list(COLAB_LINK.finditer(text))
    assert len(links) == 1, f"{path.name}: expected one Colab link, found {len(links)}"
    link = links[0]
    assert link["slug"] == course.github_slug(course.REPO_URL)
    assert link["branch"] == course.BRANCH
    assert (ROOT / link["path"]).resolve() == path.resolve(), (
        f"{path.name}'s badge opens {link['path']}, not itself"
    )
    assert link.group(0) == course.colab_url(nb, version)


@pytest.mark.parametrize(("nb", "version", "path"), GENERATED, ids=IDS)
def test_install_cell_runs_only_in_colab(nb: course.Notebook, version: str, path: Path) -> None:
    """The first code cell installs the package from the repository, in Colab and nowhere else."""
    code = [c for c in _read(path)["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cells"
    src = _source(code[0])
    lines = [
        line for line in src.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    installs = [line for line in lines if re.search(r"%pip|!pip|\"pip\", \"install\"", line)]
    assert installs == [
        f'    pip = [sys.executable, "-m", "pip", "install", "-q", "{course.install_line()}"]'
    ], f"{path.name}: the install cell should install only the course package, got {installs}"
    guard = lines.index('if "google.colab" in sys.modules:')
    assert guard < lines.index(installs[0]), f"{path.name}: the install must run only in Colab"
    assert all(line.startswith("    ") for line in lines[guard + 1 :]), (
        f"{path.name}: everything after the Colab guard belongs inside it"
    )
    assert course.install_line() == f"gpt2course @ git+{course.REPO_URL}@{course.BRANCH}"


@pytest.mark.parametrize(("nb", "version", "path"), GENERATED, ids=IDS)
def test_gpu_notebooks_ask_colab_for_a_gpu(nb: course.Notebook, version: str, path: Path) -> None:
    """Colab opens a GPU runtime for the GPU notebooks (and only those)."""
    meta = _read(path)["metadata"]
    if nb.gpu:
        assert meta.get("accelerator") == "GPU", f"{path.name}: missing accelerator: GPU"
        assert meta.get("colab", {}).get("gpuType") == "T4"
        assert "Change runtime type" in _source(_read(path)["cells"][0])
    else:
        assert "accelerator" not in meta, f"{path.name} does not need a GPU runtime"


@pytest.mark.parametrize(("nb", "version", "path"), GENERATED, ids=IDS)
def test_no_other_repository_is_linked(nb: course.Notebook, version: str, path: Path) -> None:
    """A fork that runs set-repo must not keep links to the old home anywhere in a notebook."""
    slug = course.github_slug(course.REPO_URL)
    for cell in _read(path)["cells"]:
        for m in COLAB_LINK.finditer(_source(cell)):
            assert m["slug"] == slug, f"{path.name} links to another repository: {m.group(0)}"
        for m in re.finditer(r"git\+(https://github\.com/[^@\s\"]+)", _source(cell)):
            assert m.group(1) == course.REPO_URL, f"{path.name} installs from {m.group(1)}"


def _readme() -> str:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not written yet")
    return readme.read_text(encoding="utf-8")


def test_readme_lists_every_notebook_with_its_badge() -> None:
    text = _readme()
    assert course.README_START in text and course.README_END in text, (
        "README lacks the notebook markers"
    )
    a = text.index(course.README_START) + len(course.README_START)
    table = text[a : text.index(course.README_END)].strip()
    assert table == course.readme_table(), (
        "README's notebook list is stale: run `python -m gpt2course notebooks set-repo` "
        "with the current URL, or course.write_readme_table()"
    )
    for nb in course.NOTEBOOKS:
        assert course.colab_url(nb) in text, f"README has no Colab link for {nb.slug}"
    for m in COLAB_LINK.finditer(text):
        assert m["slug"] == course.github_slug(course.REPO_URL), (
            f"README links elsewhere: {m.group(0)}"
        )


def _run_install_cell(monkeypatch, returncode: int) -> list[list[str]]:
    """Run notebook 00's install cell as Colab would, with pip answering ``returncode``."""
    import types

    calls: list[list[str]] = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: Repository not found.")

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=lambda path: None)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("GPT2COURSE_WORKBENCH", raising=False)  # the cell sets it
    monkeypatch.setattr(subprocess, "run", fake_run)
    cell = course.header_cells(course.NOTEBOOKS[0], "learner")[1]["source"]
    exec(compile(cell, "install-cell", "exec"), {})
    return calls


def test_install_cell_in_colab_installs_the_package(monkeypatch) -> None:
    calls = _run_install_cell(monkeypatch, 0)
    assert len(calls) == 1 and calls[0][-1] == course.install_line()


def test_failed_install_raises_one_line_that_says_what_to_do(monkeypatch, capsys) -> None:
    with pytest.raises(RuntimeError) as e:
        _run_install_cell(monkeypatch, 1)
    message = str(e.value)
    assert "\n" not in message and course.REPO_URL in message and "run this cell again" in message
    assert "Repository not found" in capsys.readouterr().out, "pip's own reason is shown"


def test_install_cell_does_nothing_outside_colab(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran outside Colab"))
    exec(compile(course.header_cells(course.NOTEBOOKS[0], "learner")[1]["source"], "c", "exec"), {})


def test_installing_leaves_colabs_packages_alone() -> None:
    """Every dependency accepts the version Colab ships, so pip keeps Colab's torch and widgets."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert SpecifierSet(project["requires-python"]).contains(COLAB_HAS["python"])
    deps = {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}
    for name, version in COLAB_HAS.items():
        if name in deps:
            assert deps[name].specifier.contains(version), (
                f"pyproject asks for {deps[name]}, which would replace Colab's {name} {version}"
            )


def _copy_repo(dest: Path) -> Path:
    """This checkout's tracked files, as they are on disk, copied to ``dest``."""
    if shutil.which("git") and (ROOT / ".git").exists():
        files = (
            subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True)
            .stdout.decode()
            .split("\0")
        )
        for name in filter(None, files):
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:
        ignore = shutil.ignore_patterns(".git", "test-artifacts", "__pycache__", "*.egg-info")
        shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _stale(root: Path) -> list[str]:
    """The generated notebooks under ``root`` whose cells differ from what their source makes."""
    out = []
    for nb in course.NOTEBOOKS:
        src = course.source_path(nb, root)
        for version in course.VERSIONS:
            path = course.notebook_path(nb, version, root)
            if not (src.exists() and path.exists()):
                continue
            # Instructor notes are read from this checkout; the copy holds the same files.
            want = course.cells_signature(
                course.build_notebook(nb, version, src.read_text("utf-8"))
            )
            if want != course.cells_signature(_read(path)):
                out.append(str(path.relative_to(root)))
    return sorted(out)


@pytest.mark.slow
def test_set_repo_rewrites_everything_consistently(tmp_path: Path) -> None:
    """`notebooks set-repo URL` on a copy: every link moves to URL, outputs stay, nothing is stale."""
    copy = _copy_repo(tmp_path / "repo")
    if not (copy / "README.md").exists():
        pytest.skip("README.md is not committed yet")
    old, new = course.REPO_URL, "https://github.com/someone-else/my-gpt2-fork"
    before = {
        p.relative_to(copy): [len(c.get("outputs", [])) for c in _read(p)["cells"]]
        for p in copy.glob("notebooks/**/*.ipynb")
    }
    assert before, "the copy has no notebooks"
    stale_before = _stale(copy)  # someone's notebook may be mid-edit: set-repo must add none
    env = dict(os.environ, PYTHONPATH=str(copy))
    run = subprocess.run(
        [sys.executable, "-m", "gpt2course", "notebooks", "set-repo", new],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    # Every text file that named the old home now names the new one.
    old_slug = course.github_slug(old)
    for p in copy.rglob("*"):
        if p.is_file() and p.suffix in {".py", ".md", ".toml", ".ipynb", ".yml", ".cfg", ".txt"}:
            text = p.read_text(encoding="utf-8", errors="replace")
            assert old not in text and f"github/{old_slug}/" not in text, (
                f"{p.relative_to(copy)} still names {old}"
            )

    # The copy's own generator agrees with what was rewritten, outputs were kept.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from gpt2course.workshop import course; "
            "print(json.dumps([str(course.repo_root()), course.REPO_URL, course.stale_notebooks(), "
            "[course.colab_url(nb) for nb in course.NOTEBOOKS], course.install_line()]))",
        ],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    root, url, stale, links, install = json.loads(probe.stdout)
    assert Path(root).resolve() == copy.resolve(), "the probe imported the wrong checkout"
    assert url == new
    assert install == f"gpt2course @ git+{new}@{course.BRANCH}"
    assert sorted(s.split(":")[0] for s in stale if "differs" in s) == stale_before
    for p, counts in before.items():
        nb = _read(copy / p)
        assert [len(c.get("outputs", [])) for c in nb["cells"]] == counts, f"{p} lost outputs"
        header = _source(nb["cells"][0])
        assert "someone-else/my-gpt2-fork" in header, f"{p}: badge not moved"
    readme = (copy / "README.md").read_text(encoding="utf-8")
    for link in links:
        assert link in readme
    pyproject = (copy / "pyproject.toml").read_text(encoding="utf-8")
    assert new in pyproject


def _run_header_in_colab(monkeypatch, mount, keep: bool = True, mounted: bool = False) -> dict:
    """Run the header cell under a fake google.colab whose drive.mount is ``mount``."""
    import types

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0))
    monkeypatch.delenv("GPT2COURSE_WORKBENCH", raising=False)
    real_isdir = os.path.isdir
    monkeypatch.setattr(
        os.path, "isdir", lambda p: mounted if p == "/content/drive/MyDrive" else real_isdir(p)
    )
    cell = course.header_cells(course.NOTEBOOKS[3], "learner")[1]["source"]
    assert "KEEP_MY_PIECES_ON_DRIVE = True\n" in cell
    cell = cell.replace("KEEP_MY_PIECES_ON_DRIVE = True", f"KEEP_MY_PIECES_ON_DRIVE = {keep}")
    exec(compile(cell, "header-cell", "exec"), {})
    return dict(os.environ)


def test_the_header_asks_to_mount_drive_and_keeps_the_pieces_there(monkeypatch, capsys) -> None:
    mounts = []
    env = _run_header_in_colab(monkeypatch, mounts.append)
    assert mounts == ["/content/drive"]
    assert env["GPT2COURSE_WORKBENCH"] == course.DRIVE_WORKBENCH
    assert course.DRIVE_WORKBENCH.startswith("/content/drive/MyDrive/")
    assert "kept on Google Drive" in capsys.readouterr().out


def test_the_header_does_not_mount_drive_twice(monkeypatch) -> None:
    env = _run_header_in_colab(monkeypatch, lambda p: pytest.fail("mounted again"), mounted=True)
    assert env["GPT2COURSE_WORKBENCH"] == course.DRIVE_WORKBENCH


def test_a_learner_who_says_no_is_told_what_it_means_and_carries_on(monkeypatch, capsys) -> None:
    def declined(path):
        raise ValueError("mount failed")  # what Colab raises when permission is refused

    env = _run_header_in_colab(monkeypatch, declined)
    assert "GPT2COURSE_WORKBENCH" not in env
    out = capsys.readouterr().out
    assert "mount failed" in out and "this notebook only" in out and "again" in out


def test_a_learner_who_opts_out_is_never_asked(monkeypatch, capsys) -> None:
    env = _run_header_in_colab(monkeypatch, lambda p: pytest.fail("asked"), keep=False)
    assert "GPT2COURSE_WORKBENCH" not in env
    assert "this notebook only" in capsys.readouterr().out
