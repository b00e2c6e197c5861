"""The notebook generator: one source, three versions, and nothing stale committed."""

from __future__ import annotations

import json
import os
import re

import pytest

from gpt2course.workshop import course

SOURCE = '''# %% [markdown]
# ## Adding
# Write `add`.

# %%
from gpt2course.checks import compare_values, run_check


def reference_add(a, b):
    return a + b


def check_add(f):
    return run_check("add", f, reference_add, lambda g: compare_values(g(2, 3), 5, what="2 + 3"))

# %%
def add(a, b):
    """Add two numbers."""
    # BEGIN SOLUTION
    # HINT: Python has an operator for this.
    return a + b
    # END SOLUTION

# %%
add = check_add(add)
print(add(40, 2))

# %% [markdown] instructor
# ⏱ 2 minutes.
'''


def _codes(nb):
    return [c["source"] for c in nb["cells"] if c["cell_type"] == "code"]


def test_learner_version_replaces_the_solution_by_a_stub():
    nb = course.build_notebook(course.NOTEBOOKS[0], "learner", SOURCE)
    code = _codes(nb)[2]
    assert "return a + b" not in code
    assert "raise NotImplementedError" in code
    assert "# HINT: Python has an operator for this." in code
    assert '"""Add two numbers."""' in code
    assert not any("BEGIN SOLUTION" in c for c in _codes(nb))


def test_solution_and_instructor_versions_keep_it():
    sol = course.build_notebook(course.NOTEBOOKS[0], "solutions", SOURCE)
    assert "    return a + b" in _codes(sol)[2]
    assert not any("SOLUTION" in c for c in _codes(sol))
    texts = [c["source"] for c in sol["cells"]]
    assert "⏱ 2 minutes." not in texts
    ins = course.build_notebook(course.NOTEBOOKS[0], "instructor", SOURCE)
    assert "⏱ 2 minutes." in [c["source"] for c in ins["cells"]]


def test_every_version_starts_with_badge_and_colab_install():
    for version in course.VERSIONS:
        nb = course.build_notebook(course.NOTEBOOKS[3], version, SOURCE)
        assert course.colab_url(course.NOTEBOOKS[3], version) in nb["cells"][0]["source"]
        assert '"google.colab" in sys.modules' in nb["cells"][1]["source"]
        assert course.REPO_URL in nb["cells"][1]["source"]


@pytest.mark.parametrize(
    "bad, why",
    [
        ("# %%\n# BEGIN SOLUTION\nx = 1\n", "without '# END SOLUTION'"),
        ("# %%\nx = 1\n# END SOLUTION\n", "without '# BEGIN SOLUTION'"),
        ("# %%\n# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
        ("x = 1\n# %%\n", "before the first"),
        ("# %% [markdown]\nnot a comment\n", "must start with"),
    ],
)
def test_malformed_sources_are_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        course.build_notebook(course.NOTEBOOKS[0], "learner", bad)


@pytest.mark.slow
def test_learner_version_runs_to_the_end_with_the_reference(tmp_path):
    nb = course.build_notebook(course.NOTEBOOKS[0], "learner", SOURCE)
    # Skip the Colab install cell's magic-free body is fine; run everything as a learner would.
    ran = course.execute(json.loads(json.dumps(nb)), cwd=tmp_path)
    outputs = "".join(
        o.get("text", "") for c in ran.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "add: not done yet. Carrying on with the reference implementation." in outputs
    assert "42" in outputs


def test_committed_notebooks_match_their_sources():
    stale = course.stale_notebooks()
    assert not stale, "\n".join(stale) + "\nrun: python -m gpt2course notebooks build --execute NN"


def test_readme_lists_every_notebook_with_its_badge():
    readme = (course.repo_root() / "README.md").read_text(encoding="utf-8")
    assert course.readme_table() in readme, (
        "run: python -m gpt2course notebooks set-repo URL (or write_readme_table)"
    )


def test_github_slug():
    assert course.github_slug("https://github.com/a/b") == "a/b"
    assert course.github_slug("https://github.com/a/b.git") == "a/b"
    with pytest.raises(ValueError):
        course.github_slug("https://example.com/a/b")


def test_ci_runs_the_readmes_two_commands():
    root = course.repo_root()
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2, "the README gives exactly two set-up commands"
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in block:
        assert command in ci, f".ci/run must run the README's command {command!r}"


def test_instructor_version_shows_the_solutions_outputs():
    sol = course.build_notebook(course.NOTEBOOKS[0], "solutions", SOURCE)
    ins = course.build_notebook(course.NOTEBOOKS[0], "instructor", SOURCE)
    for n, cell in enumerate(c for c in sol["cells"] if c["cell_type"] == "code"):
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"cell {n}\n"}]
        cell["execution_count"] = n + 1
    course.copy_outputs(sol, ins)
    got = [c["outputs"] for c in ins["cells"] if c["cell_type"] == "code"]
    want = [c["outputs"] for c in sol["cells"] if c["cell_type"] == "code"]
    assert got == want


def test_estimate_counts_words_and_solution_lines():
    text = "# %% [markdown]\n# one two three\n\n# %%\ndef f():\n    # BEGIN SOLUTION\n"
    text += "    # HINT: a hint\n    x = 1\n    return x\n    # END SOLUTION\n"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(course.Path, "read_text", lambda self, encoding=None: text)
        e = course.estimate(course.NOTEBOOKS[0])
    assert (e.words, e.exercise_lines) == (3, (2,))
    assert e.minutes == pytest.approx(3 / 130 + 7)


def test_notebooks_run_by_the_builder_draw_no_progress_bars(monkeypatch, tmp_path):
    # A bar's fragments would be kept in the committed outputs (test_notebook_outputs).
    import nbclient

    seen = {}

    class Client:
        def __init__(self, *args, **kwargs):
            pass

        def execute(self):
            seen.update({k: os.environ.get(k) for k in ("GPT2COURSE_PROGRESS", "GPT2COURSE_QUICK")})

    monkeypatch.setattr(nbclient, "NotebookClient", Client)
    course.execute({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, tmp_path)
    assert seen == {"GPT2COURSE_PROGRESS": "0", "GPT2COURSE_QUICK": "1"}


def _plan_slots(heading: str) -> dict[str, int]:
    """Notebook number -> minutes, from a schedule table of the instructor guide."""
    guide = (course.repo_root() / "docs" / "instructor-guide.md").read_text(encoding="utf-8")
    section = guide.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    slots: dict[str, int] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        nb = next((c[:2] for c in cells[:-1] if re.match(r"\d\d [a-z]", c)), None)
        if nb and cells[-1].endswith(" min"):
            slots[nb] = slots.get(nb, 0) + int(cells[-1].split()[0])
    return slots


@pytest.mark.parametrize("plan", ["### One day", "### Two days"])
def test_schedule_slots_hold_the_estimated_learner_time(plan):
    slots = _plan_slots(plan)
    assert slots, f"no schedule rows found under {plan!r}"
    short = {
        nb: (minutes, round(course.estimate(course.find(nb)).minutes))
        for nb, minutes in slots.items()
        if minutes < course.estimate(course.find(nb)).minutes
    }
    assert not short, f"slots (minutes, estimate) below the estimate: {short}"


def test_the_guides_estimate_table_is_current():
    from gpt2course.workshop import notebooks

    guide = (course.repo_root() / "docs" / "instructor-guide.md").read_text(encoding="utf-8")
    a, b = notebooks.GUIDE_MARKERS
    assert guide.split(a)[1].split(b)[0].strip() == notebooks.estimate_table(), (
        "run: python -m gpt2course notebooks estimate --write"
    )


@pytest.mark.parametrize("nb", course.NOTEBOOKS, ids=lambda nb: nb.slug)
def test_instructor_notes_name_every_checked_exercise(nb):
    """Each part has instructor notes, and they name every exercise its checks wrap, so an
    instructor reading them knows the check messages the room will see."""
    notes = course.repo_root() / "notebooks" / "instructor_notes" / f"{nb.slug}.md"
    assert notes.is_file(), f"no instructor notes for {nb.slug}"
    text = notes.read_text(encoding="utf-8")
    source = course.source_path(nb).read_text(encoding="utf-8")
    checked = re.findall(r"^(\w+) = checks\.check_\w+\(", source, re.M)
    missing = [name for name in checked if name not in text]
    assert not missing, f"{notes.name} does not mention {missing}"
