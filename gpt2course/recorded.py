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

from .device import quick_mode

FOLDER = Path(__file__).parent / "recorded"


def path(slug: str) -> Path:
    """Where the recorded full-size outputs of one notebook are kept."""
    return FOLDER / f"{slug}.json"


def busy(meta: dict) -> str:
    """How busy the machine was during a recorded run, in words for its label."""
    load, cores = meta.get("load"), meta.get("cores")
    if load is None:
        return "(how busy the machine was is not recorded)"
    if load < 1:
        return f"(a quiet machine: load {load:.1f})"
    share = f" on {cores} cores" if cores else ""
    return f"(a shared machine: load {load:.1f}{share}, so slower than it would be alone)"


def show(slug: str, key: str) -> None:
    """Display what cell ``key`` of notebook ``slug`` gave at full size, with its label."""
    from IPython.display import display

    above = (
        "Above: this run, in quick mode (GPT2COURSE_QUICK=1: sizes cut so the tests run in "
        "seconds, not the real result)."
        if quick_mode()
        else "Above: your run."
    )
    # {"meta": {...}, "cells": {KEY: [outputs]}}, written by gpt2course.workshop.record
    record = json.loads(path(slug).read_text(encoding="utf-8")) if path(slug).is_file() else {}
    if key not in record.get("cells", {}):
        print(f"{above}\nNo full-size run of this cell is recorded yet.")
        return
    meta = record["meta"]
    print(
        f"{above}\nRecorded full-size run (the default settings, not quick mode): {meta['date']}, "
        f"{meta['device']}, torch {meta['torch']}, notebook run in {meta['minutes']:.1f} min "
        f"{busy(meta)}.\n"
    )
    for out in record["cells"][key]:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            print("".join(text) if isinstance(text, list) else text, end="")
        elif "data" in out:
            display(out["data"], raw=True)
