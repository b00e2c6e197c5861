"""The notebook benchmark's bookkeeping: cells grouped under headings, times from nbclient."""

from __future__ import annotations

from gpt2course.workshop.bench.notebooks import _cell_seconds, sections_of


def _code(start: str, end: str) -> dict:
    ex = {"iopub.execute_input": start, "shell.execute_reply": end}
    return {"cell_type": "code", "source": "x = 1", "metadata": {"execution": ex}}


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "source": text, "metadata": {}}


def test_cell_time_comes_from_nbclient_timestamps() -> None:
    cell = _code("2026-01-01T10:00:00.250000Z", "2026-01-01T10:00:02.000000Z")
    assert _cell_seconds(cell) == 1.75
    assert _cell_seconds({"cell_type": "code", "metadata": {}}) == 0.0  # never ran


def test_cells_are_grouped_under_the_heading_they_follow() -> None:
    t = "2026-01-01T10:00:0{}.000000Z"
    cells = [
        _md("[![Open In Colab](x)](y)\n\n# Title"),
        _code(t.format(0), t.format(1)),
        _md("## Part A\nsome text"),
        _code(t.format(1), t.format(3)),
        _md("just text, no heading"),
        _code(t.format(3), t.format(4)),
        _md("### Exercise"),
        _code(t.format(4), t.format(8)),
    ]
    got = [(s.heading, s.cells, s.seconds) for s in sections_of(cells)]
    assert got == [
        ("start: install, imports, settings", 1, 1.0),
        ("Part A", 2, 3.0),
        ("  Exercise", 1, 4.0),
    ]
