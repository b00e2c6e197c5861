"""Full-size results, recorded, for readers who look before they run.

The tests run every notebook in quick mode (small models, few steps) so that CI takes
minutes; the outputs committed with the notebooks come from those runs. A reader on GitHub
would then see a 2-layer model's noise where the notebook promises Shakespeare. So a few
cells, tagged ``record:KEY`` in the notebook's source, are also run at the settings a learner
gets by default, by ``python -m gpt2course notebooks record NN``; what they printed and drew
is kept here (``gpt2course/recorded/NN_name.json``, with the machine and the date), and the
generator puts a cell after each of them that shows it, labelled as such.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import course
from .device import quick_mode

__all__ = ["harvest", "load", "path", "record", "show"]

FOLDER = Path(__file__).parent / "recorded"
TAG = "record:"


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


def _keep(output: dict[str, Any]) -> dict[str, Any] | None:
    """The part of an output worth keeping: text and pictures, no widget state or stderr."""
    if output.get("output_type") == "stream":
        return None if output.get("name") == "stderr" else {**output}
    data = {
        k: v
        for k, v in output.get("data", {}).items()
        if k in ("text/plain", "image/png", "text/html")
    }
    return {"output_type": "display_data", "data": data, "metadata": {}} if data else None


def harvest(slug: str, notebook: dict[str, Any], seconds: float, device: str) -> Path:
    """Keep the outputs of the ``record:``-tagged cells of an executed full-size notebook."""
    import torch

    cells: dict[str, list] = {}
    for cell in notebook["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith(TAG):
                kept = [k for k in (_keep(o) for o in cell.get("outputs", [])) if k]
                cells[tag[len(TAG) :]] = kept
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "machine": f"{platform.machine()}, {platform.system()}",
        "torch": torch.__version__.split("+")[0],
        "minutes": seconds / 60,
    }
    FOLDER.mkdir(exist_ok=True)
    p = path(slug)
    p.write_text(json.dumps({"meta": meta, "cells": cells}, indent=1) + "\n", encoding="utf-8")
    return p


def _device_name() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu}, {os.cpu_count()} cores)"


def record(slugs: list[str], timeout: int = 3600) -> list[Path]:
    """Run each notebook's solutions at full size and keep its ``record:`` cells' outputs."""
    written = []
    for nb in [course.find(s) for s in slugs]:
        notebook = json.loads(
            json.dumps(
                course.build_notebook(
                    nb, "solutions", course.source_path(nb).read_text(encoding="utf-8")
                )
            )
        )
        path = course.notebook_path(nb, "solutions")
        print(
            f"running {path.relative_to(course.repo_root())} at full size ...",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        try:
            done = course.execute(notebook, cwd=path.parent, timeout=timeout, quick=False)
        finally:
            os.environ["GPT2COURSE_QUICK"] = "1"
        written.append(harvest(nb.slug, done, time.perf_counter() - t0, _device_name()))
    return written
