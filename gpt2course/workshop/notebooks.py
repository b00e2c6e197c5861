"""``python -m gpt2course notebooks build|check|portability|set-repo``."""

from __future__ import annotations

import argparse
import json
import sys

from gpt2course.files import atomic_write_text

from . import course, portability, record


def estimate_table() -> str:
    """The estimate of every notebook as a markdown table that shows its arithmetic."""
    rows = [
        "| part | words | reading (÷ 130/min) | exercises (lines) | exercises (5 + a line each, ≤ 20) | "
        "estimate |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for nb in course.NOTEBOOKS:
        e = course.estimate(nb)
        lines = " + ".join(map(str, e.exercise_lines)) or "none"
        rows.append(
            f"| {nb.slug[:2]} | {e.words:,} | {e.reading:.0f} min | {lines} | "
            f"{e.exercises:.0f} min | **{e.minutes:.0f} min** |"
        )
    return "\n".join(rows)


GUIDE_MARKERS = ("<!-- estimate:start -->", "<!-- estimate:end -->")


def write_estimate_table() -> None:
    """Put the estimate table between the instructor guide's markers."""
    guide = course.repo_root() / "docs" / "instructor-guide.md"
    text = guide.read_text(encoding="utf-8")
    a = text.index(GUIDE_MARKERS[0]) + len(GUIDE_MARKERS[0])
    b = text.index(GUIDE_MARKERS[1])
    atomic_write_text(guide, text[:a] + "\n" + estimate_table() + "\n" + text[b:])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m gpt2course notebooks")
    add = p.add_subparsers(dest="cmd", required=True).add_parser
    b = add("build", help="write learner, solution and instructor notebooks from notebooks/src")
    b.add_argument("slugs", nargs="*", help="notebooks to build (slug or number); all by default")
    b.add_argument(
        "--execute", action="store_true", help="run them (quick mode) to fill the outputs"
    )
    add("check", help="fail if a committed notebook differs from what its source makes")
    r = add("record", help="run notebooks at full size and keep their record: cells' outputs")
    r.add_argument("slugs", nargs="+", help="notebooks to record (slug or number)")
    bd = add("bands", help="run a notebook's default training per seed: its report card's bands")
    bd.add_argument("slug", help="notebook (slug or number)")
    bd.add_argument("--seeds", type=int, default=3, help="how many seeds (0, 1, ...)")
    pt = add(
        "portability",
        help="run the notebooks under nbval with other CPUs' kernels and thread counts",
    )
    pt.add_argument("slugs", nargs="*", help="notebooks to run (slug or number); all by default")
    pt.add_argument(
        "--settings",
        default="",
        help="CAPABILITY:THREADS,... (e.g. default:1,avx2:2); by default default, avx2 and "
        "this machine's best kernels, each with 1 and 2 threads",
    )
    e = add(
        "estimate", help="a learner's desk time per notebook: prose at 130 words/min, exercises"
    )
    e.add_argument("--write", action="store_true", help="and put the table in the instructor guide")
    s = add("set-repo", help="point badges, install cells and links at another repository")
    s.add_argument("url")
    args = p.parse_args(argv)
    if args.cmd == "build":
        for path in course.build(args.slugs, execute_cells=args.execute):
            print(path.relative_to(course.repo_root()))
        return 0
    if args.cmd == "check":
        stale = course.stale_notebooks()
        for line in stale:
            print(line)
        if stale:
            print("run `python -m gpt2course notebooks build --execute NAME` to regenerate them")
        return 1 if stale else 0
    if args.cmd == "record":
        try:
            for path in record.record(args.slugs):
                print(path.relative_to(course.repo_root()))
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        print("now rebuild them: python -m gpt2course notebooks build --execute", *args.slugs)
        return 0
    if args.cmd == "bands":
        try:
            print(record.record_bands(args.slug, list(range(args.seeds))))
        except (KeyError, RuntimeError) as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "portability":
        try:
            settings = portability.parse_settings(args.settings) if args.settings else None
            return portability.main(settings, args.slugs or None)
        except (ValueError, KeyError) as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return 2
    if args.cmd == "estimate":
        print(estimate_table())
        if args.write:
            write_estimate_table()
        return 0
    if args.cmd == "set-repo":
        course.set_repo(args.url)
        print(json.dumps({"repo": args.url}))
        return 0
    return 2
