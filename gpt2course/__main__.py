"""``python -m gpt2course VERB ...``: the course's command line.

Verbs: assets (bundle, seed, list), doctor, notebooks (build, check, set-repo),
bench NAME, generate, train. Each verb lives in its own module and is imported only when
used, so ``doctor`` works even where torch is broken.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (module, function taking argv, one-line help)
VERBS = {
    "assets": ("gpt2course.cli_assets", "main", "download, bundle or seed the offline assets"),
    "doctor": ("gpt2course.doctor", "main", "check this environment and say how to fix it"),
    "notebooks": ("gpt2course.cli_notebooks", "main", "generate the notebooks from notebooks/src"),
    "bench": ("gpt2course.bench", "main", "run a benchmark: tokenizer, generate, train"),
    "generate": ("gpt2course.cli_generate", "main", "generate text from a model, streamed"),
    "train": ("gpt2course.cli.train", "main", "train a GPT (torchrun for several processes)"),
}


def usage() -> str:
    lines = ["usage: python -m gpt2course VERB [options]", "", "verbs:"]
    lines += [f"  {verb:<10} {help_}" for verb, (_, _, help_) in VERBS.items()]
    lines.append("\n`python -m gpt2course VERB --help` says more about one verb.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"unknown verb {verb!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = VERBS[verb]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
