"""Benchmarks: ``python -m gpt2course bench NAME [options]``; NAME is a module here."""

from __future__ import annotations

import importlib
import pkgutil
import sys


def main(argv: list[str]) -> int:
    # The benchmark names: the modules here, less the private helpers (``_timing``).
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m gpt2course bench NAME [options]\nbenchmarks: " + ", ".join(names))
        return 0
    if argv[0] not in names:
        print(f"unknown benchmark {argv[0]!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"{__name__}.{argv[0]}").main(argv[1:]) or 0)
