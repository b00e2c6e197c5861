"""Committed notebook outputs are the first thing a reader sees, on GitHub or in Colab, and what
nbval compares on every other machine: they must hold nothing of the machine that made them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpt2course.workshop import course

# An absolute path: /a/b/... not preceded by a URL's "//" or "host/" (so links pass), or C:\...
LOCAL_PATH = re.compile(r"(?<![\w:/.~])/(?:[\w.-]+/){2,}|\b[A-Z]:\\[\w.-]+\\")
RAW_FLOAT = re.compile(r"\d\.\d{9,}")  # a float printed to its last bits
WIDGET = "application/vnd.jupyter.widget-view+json"
# A tqdm bar's pieces: "\r", " 40%|####  |", "12.3it/s", "1.2s/it"
PROGRESS_BAR = re.compile(r"\r|\d%\|| \d+(?:\.\d+)?(?:it/s|s/it)\b")
# A line that ends in a bare True or False: a check printed, not something to read
BOOLEAN_LINE = re.compile(r"(?m)(?:^|[:=]\s*)(?:True|False)\s*$")
MAX_BOOLEAN_LINES = 3  # "same logits: True" shows a fact; a column of them is a test's log

NOTEBOOKS = [
    (nb, version, course.notebook_path(nb, version))
    for nb in course.NOTEBOOKS
    for version in course.VERSIONS
]
IDS = [f"{version}-{nb.slug}" for nb, version, _ in NOTEBOOKS]


def _text(output: dict) -> str:
    """The text a reader sees of one output (images left out)."""
    if output.get("output_type") == "error":
        return "\n".join([output.get("ename", ""), output.get("evalue", "")])
    parts = [output.get("text", "")]
    data = output.get("data", {})
    parts += [data.get("text/plain", ""), data.get("text/html", ""), data.get("text/markdown", "")]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def _problems(notebook: dict) -> list[str]:
    problems = []
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        ignored = "NBVAL_IGNORE_OUTPUT" in source or "NBVAL_SKIP" in source
        meant_to_raise = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        booleans = sum(len(BOOLEAN_LINE.findall(_text(out))) for out in cell.get("outputs", []))
        if booleans > MAX_BOOLEAN_LINES:
            problems.append(
                f"cell {i}: {booleans} lines of True/False, a test's log: print what they measure"
            )
        bars = [t for out in cell.get("outputs", []) if PROGRESS_BAR.search(t := _text(out))]
        if bars:
            problems.append(
                f"cell {i}: {len(bars)} progress-bar fragment(s), such as {bars[-1].strip()[:80]!r}"
            )
        for out in cell.get("outputs", []):
            text = _text(out)
            if m := LOCAL_PATH.search(text):
                problems.append(
                    f"cell {i}: a local path of the machine that ran it: {m.group(0)!r}"
                )
            if out.get("name") == "stderr" and "Warning" in text:
                problems.append(f"cell {i}: a warning printed to stderr: {text.strip()[:120]!r}")
            if not meant_to_raise and (
                out.get("output_type") == "error" or "Traceback (most recent call last)" in text
            ):
                problems.append(f"cell {i}: a traceback the notebook did not mean to show")
            if WIDGET in out.get("data", {}) and "text/html" not in out["data"]:
                problems.append(
                    f"cell {i}: a widget with no static view, blank for a reader without a kernel"
                )
            if not ignored and (m := RAW_FLOAT.search(text)):
                problems.append(
                    f"cell {i}: a raw float {m.group(0)!r}, which another CPU prints differently"
                )
    return problems


@pytest.mark.parametrize(("nb", "version", "path"), NOTEBOOKS, ids=IDS)
def test_committed_outputs_hold_nothing_of_the_machine(nb, version, path: Path) -> None:
    problems = _problems(json.loads(path.read_text(encoding="utf-8")))
    assert not problems, (
        f"{path.relative_to(course.repo_root())}:\n  "
        + "\n  ".join(problems)
        + "\nFix the cell in notebooks/src, then `python -m gpt2course notebooks build --execute "
        + nb.slug[:2]
        + "`."
    )


def _notebook(outputs: list[dict], source: str = "x", tags: list[str] | None = None) -> dict:
    cell = {"cell_type": "code", "source": source, "metadata": {"tags": tags or []}}
    return {"cells": [{**cell, "outputs": outputs}]}


def _stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


@pytest.mark.parametrize(
    "output",
    [
        _stream("/root/.cache/gpt2course/standin-gpt2/model.safetensors\n"),
        _stream("C:\\Users\\ada\\gpt2\\model.safetensors\n"),
        _stream("/tmp/ipykernel_1/1.py:7: UserWarning: Glyph 12515 missing\n", name="stderr"),
        _stream("FutureWarning: `x` is deprecated\n", name="stderr"),
        {"output_type": "error", "ename": "KeyError", "evalue": "'x'", "traceback": []},
        _stream("Traceback (most recent call last):\n  File ...\n"),
        _stream("max difference: 5.960464477539063e-08\n"),
        {"output_type": "display_data", "data": {"text/plain": "VBox()", WIDGET: {}}},
        {"output_type": "execute_result", "data": {"text/plain": "tensor(0.1234567891)"}},
        _stream("\rtraining:   0%|          | 0/60 [00:00<?, ?it/s]", name="stderr"),
        _stream("training: 100%|##########| 60/60 [00:10<00:00,  5.70it/s]\n", name="stderr"),
        _stream("step 3/60 [00:02, 1.52s/it]\n"),
        _stream("".join(f"claim {n} holds: True\n" for n in range(4))),
        _stream("True\nTrue\nFalse\nTrue\n"),
    ],
    ids=[
        "posix-path",
        "windows-path",
        "font-warning",
        "deprecation",
        "error",
        "traceback",
        "raw-float",
        "raw-float-result",
        "widget-without-picture",
        "tqdm-first-frame",
        "tqdm-last-frame",
        "seconds-per-step",
        "labelled-booleans",
        "bare-booleans",
    ],
)
def test_the_scan_refuses_what_it_is_for(output: dict) -> None:
    assert _problems(_notebook([output]))


@pytest.mark.parametrize(
    ("output", "source", "tags"),
    [
        (_stream("see https://github.com/octocat/hello/blob/main/x.ipynb\n"), "x", []),
        (_stream("h.0.attn.c_attn.weight (768, 2304)  loss 4.17\n"), "x", []),
        (_stream("12.3456789012 s\n"), "# NBVAL_IGNORE_OUTPUT\nx", []),
        (_stream("same logits: True\nrestored: True\n"), "x", []),
        (_stream("loss 3.2 (50% of the way), 12 tokens/s\n"), "x", []),
        (
            {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
            "x",
            ["raises-exception"],
        ),
    ],
    ids=[
        "url",
        "names-and-rounded",
        "ignored-timing",
        "a-fact-or-two",
        "percent-and-rate",
        "meant-to-raise",
    ],
)
def test_the_scan_lets_honest_outputs_pass(output: dict, source: str, tags: list[str]) -> None:
    assert _problems(_notebook([output], source, tags)) == []
