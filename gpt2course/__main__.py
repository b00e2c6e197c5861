"""``python -m gpt2course VERB ...``: the course's command line.

Verbs: assets (bundle, seed, list), doctor, notebooks (build, check, set-repo),
bench NAME, generate, train. Each verb lives in its own module, imported only when used (so
``doctor`` works even where torch is broken); all but ``doctor`` are in gpt2course.workshop.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (the module whose main(argv) runs it, one-line help)
VERBS = {
    "assets": ("gpt2course.workshop.assets", "download, bundle or seed the offline assets"),
    "doctor": ("gpt2course.doctor", "check this environment and say how to fix it"),
    "notebooks": ("gpt2course.workshop.notebooks", "generate the notebooks from notebooks/src"),
    "bench": ("gpt2course.workshop.bench", "run a benchmark (`bench --help` lists them)"),
    "generate": ("gpt2course.workshop.generate", "generate text from a model, streamed"),
    "train": ("gpt2course.workshop.train", "train a GPT (torchrun for several processes)"),
}


def usage() -> str:
    lines = ["usage: python -m gpt2course VERB [options]", "", "verbs:"]
    lines += [f"  {verb:<10} {help_}" for verb, (_, help_) in VERBS.items()]
    lines.append("\n`python -m gpt2course VERB --help` says more about one verb.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one verb; bad input is one line on stderr and a non-zero exit, never a traceback
    (``--debug`` anywhere shows it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(usage())
            return 0
        if argv[0] not in VERBS:
            print(f"unknown verb {argv[0]!r}.\n\n{usage()}", file=sys.stderr)
            return 2
        return int(importlib.import_module(VERBS[argv[0]][0]).main(argv[1:]) or 0)
    except SystemExit as e:  # argparse's own one-line complaints, kept as they are
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        known = isinstance(e, (OSError, ValueError, RuntimeError, KeyError, TypeError, LookupError))
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = "" if known else " (an unexpected error; please report it)"
        print(f"error: {what}{hint}. Run again with --debug to see where.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
