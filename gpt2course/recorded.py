"""Full-size results, recorded, for readers who look before they run.

The tests run every notebook in quick mode (small models, few steps) so that CI takes
minutes; the outputs committed with the notebooks come from those runs. A reader on GitHub
would then see a 2-layer model's noise where the notebook promises Shakespeare. So a few
cells, tagged ``record:KEY`` in the notebook's source, are also run at the settings a learner
gets by default, by ``python -m gpt2course notebooks record NN`` (gpt2course.workshop.record);
what they printed and drew is kept here (``gpt2course/recorded/NN_name.json``, with the machine and the date), and the
generator puts a cell after each of them that shows it, labelled as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .device import quick_mode

__all__ = ["label", "load", "path", "show"]

FOLDER = Path(__file__).parent / "recorded"


def path(slug: str) -> Path:
    """Where the recorded full-size outputs of one notebook are kept."""
    return FOLDER / f"{slug}.json"


def load(slug: str) -> dict[str, Any] | None:
    """The record of one notebook: ``{"meta": {...}, "cells": {KEY: [outputs]}}``, or None."""
    p = path(slug)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def label(meta: dict[str, Any]) -> str:
    """One line saying where and when the recorded run was made."""
    return (
        f"Recorded full-size run (the default settings, not quick mode): {meta['date']}, "
        f"{meta['device']}, torch {meta['torch']}, notebook run in {meta['minutes']:.1f} min."
    )


def show(slug: str, key: str) -> None:
    """Display what cell ``key`` of notebook ``slug`` gave at full size, with its label."""
    from IPython.display import display

    above = (
        "Above: this run, in quick mode (GPT2COURSE_QUICK=1: sizes cut so the tests run in "
        "seconds, not the real result)."
        if quick_mode()
        else "Above: your run."
    )
    record = load(slug)
    if record is None or key not in record["cells"]:
        print(f"{above}\nNo full-size run of this cell is recorded yet.")
        return
    print(f"{above}\n{label(record['meta'])}\n")
    for out in record["cells"][key]:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            print("".join(text) if isinstance(text, list) else text, end="")
        elif "data" in out:
            display(out["data"], raw=True)
