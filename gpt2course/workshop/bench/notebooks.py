"""``python -m gpt2course bench notebooks``: run notebooks and time each section.

A section is everything under one markdown heading; its time is the sum of its code cells'
kernel time (from nbclient's execution timestamps). The instructor guide's schedules are
built from these figures: they are what the machine needs, a lower bound for a room of
learners who read, type and think.

    python -m gpt2course bench notebooks                 # every notebook, solutions, full size
    python -m gpt2course bench notebooks 03 04 --quick   # quick mode (what CI runs)
    python -m gpt2course bench notebooks --json out.json # keep the figures
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from gpt2course.files import atomic_write_text

from .. import course
from ..record import LoadWatch, device_name
from ._timing import parser

HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*$", re.M)


@dataclass
class Section:
    heading: str
    cells: int = 0
    seconds: float = 0.0


@dataclass
class NotebookTiming:
    slug: str
    version: str
    quick: bool
    wall_s: float  # kernel start to last cell, as the learner waits for it
    sections: list[Section] = field(default_factory=list)
    error: str = ""
    load: float | None = None  # mean load average while it ran: over 1, the machine was shared

    @property
    def cells_s(self) -> float:
        """The time the code cells ran, all sections together."""
        return sum(s.seconds for s in self.sections)


def _cell_seconds(cell) -> float:
    """How long one executed cell ran, from the timestamps nbclient records."""
    ex = cell.get("metadata", {}).get("execution", {})
    start = ex.get("iopub.execute_input") or ex.get("shell.execute_request")
    end = ex.get("shell.execute_reply") or ex.get("iopub.status.idle")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return max(0.0, (parse(end) - parse(start)).total_seconds())


def sections_of(cells: list) -> list[Section]:
    """Group executed cells under the markdown heading they follow (the title cell first)."""
    out = [Section("(setup, before the first heading)")]
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            if headings := HEADING.findall(course.cell_source(cell)):
                level, text = headings[-1]
                if len(level) == 1:  # the title: its cells install, import and set sizes
                    text = "start: install, imports, settings"
                out.append(Section(("  " if len(level) > 2 else "") + text))
        elif cell.get("cell_type") == "code":
            out[-1].cells += 1
            out[-1].seconds += _cell_seconds(cell)
    return [s for s in out if s.cells]


def time_notebook(nb: course.Notebook, version: str, quick: bool, timeout: int) -> NotebookTiming:
    """Run one committed notebook top to bottom in a fresh kernel and time its sections."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    path = course.notebook_path(nb, version)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; run `python -m gpt2course notebooks build {nb.slug[:2]}`"
        )
    node = nbformat.read(str(path), as_version=4)
    for cell in node.cells:  # drop the timestamps of the run that made the committed outputs
        cell.get("metadata", {}).pop("execution", None)
    error = ""
    t0 = time.perf_counter()
    with LoadWatch() as load:
        try:
            course.execute(node, path.parent, timeout, quick)
        except (CellExecutionError, CellTimeoutError) as e:
            # Keep the sections that ran: a slow machine still learns where the time went.
            error = str(e).strip().splitlines()[0 if isinstance(e, CellTimeoutError) else -1][:300]
    wall = time.perf_counter() - t0
    return NotebookTiming(
        nb.slug, version, quick, wall, sections_of(node.cells), error, round(load.mean, 1)
    )


def format_timing(t: NotebookTiming) -> str:
    """A small table: one row per section, then the totals."""
    lines = [f"{t.slug} ({t.version}, {'quick' if t.quick else 'full'} mode)"]
    lines += [f"  {s.seconds:8.1f} s  {s.cells:3d} cells  {s.heading}" for s in t.sections]
    lines.append(
        f"  {t.cells_s:8.1f} s in cells; {t.wall_s:.1f} s with kernel start; load {t.load}"
    )
    if t.error:
        lines.append(f"  FAILED: {t.error}")
    return "\n".join(lines)


def markdown_timing(t: NotebookTiming) -> str:
    """The same figures as a markdown table, for the instructor notes."""
    mode = "quick" if t.quick else "full"
    lines = ["| section | code cells | machine time |", "| --- | ---: | ---: |"]
    for s in t.sections:
        heading = s.heading.strip().replace("|", "\\|")  # a pipe would end the table cell
        lines.append(f"| {heading} | {s.cells} | {_fmt_s(s.seconds)} |")
    lines.append(
        f"| **total** ({mode} mode, with kernel start; mean load {t.load}) | | "
        f"**{_fmt_s(t.wall_s)}** |"
    )
    return "\n".join(lines)


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "<1 s"
    return f"{seconds / 60:.1f} min"


def machine() -> str:
    """One line naming this machine: its GPU or CPU, Python and torch."""
    return f"{device_name()}, Python {platform.python_version()}, torch {torch.__version__}"


def main(argv: list[str]) -> int:
    p = parser("notebooks", "Run notebooks in a fresh kernel and report the time of each section.")
    p.add_argument("notebooks", nargs="*", help="numbers or slugs (default: every generated one)")
    p.add_argument("--version", choices=list(course.VERSIONS), default="solutions")
    p.add_argument("--quick", action="store_true", help="GPT2COURSE_QUICK=1, as CI runs them")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--markdown", action="store_true", help="print markdown tables instead")
    args = p.parse_args(argv)

    todo = [nb for nb in course.NOTEBOOKS if course.notebook_path(nb, args.version).exists()]
    try:
        todo = [course.find(s) for s in args.notebooks] if args.notebooks else todo
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    print(f"# {machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    results = []
    for nb in todo:
        try:
            t = time_notebook(nb, args.version, args.quick, args.timeout)
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 2
        results.append(t)
        print(markdown_timing(t) if args.markdown else format_timing(t), flush=True)
    if args.json:
        date = datetime.now(timezone.utc).isoformat(timespec="minutes")
        figures = [{**asdict(t), "cells_s": round(t.cells_s, 2)} for t in results]
        out = {"machine": machine(), "date": date, "notebooks": figures}
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 1 if any(t.error for t in results) else 0
