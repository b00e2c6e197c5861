"""``python -m gpt2course assets list|fetch|bundle|seed``."""

from __future__ import annotations

import argparse
import sys

from gpt2course import assets
from gpt2course.files import CheckpointError

from . import offline


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gpt2course assets",
        description="The course's downloads, and offline bundles for rooms without wifi.",
    )
    add = p.add_subparsers(dest="cmd", required=True).add_parser
    add("list", help="each asset, whether it is in the cache, and where")
    add("fetch", help="download every asset into the cache (needs a network)")
    b = add("bundle", help="write every asset to DIR, to copy to machines with no network")
    b.add_argument("dir")
    b.add_argument(
        "--models",
        default="",
        help="also carry pretrained weights, comma-separated (e.g. gpt2,gpt2-medium)",
    )
    s = add("seed", help="import a bundle into this machine's cache (verifies every hash)")
    s.add_argument("--from", dest="src", required=True, metavar="DIR")
    args = p.parse_args(argv)

    try:
        if args.cmd == "list":
            print(f"cache: {assets.cache_dir()}")
            for name, a in assets.ASSETS.items():
                mark = "ok     " if assets.is_present(name) else "missing"
                print(f"  {mark} {name:<22} {a.what}")
            return 0
        if args.cmd == "fetch":
            for name in assets.ASSETS:
                print(assets.fetch(name))
            assets.ensure_tiktoken_files()
            return 0
        if args.cmd == "bundle":
            try:
                offline.check_bundle_dest(args.dir)
            except ValueError as e:  # a destination that cannot work: a usage error
                print(f"error: {e}", file=sys.stderr)
                return 2
            models = [m for m in args.models.split(",") if m]
            for path in offline.bundle(args.dir, models=models):
                print(path)
            print(
                f"bundle ready: copy {args.dir} to each machine, then run "
                f"`python -m gpt2course assets seed --from {args.dir}`"
            )
            return 0
        if args.cmd == "seed":
            names = offline.seed(args.src)
            for name in names:
                print(f"imported {name}")
            for name in offline.unverified(names):
                print(
                    f"note: {name}'s weights are taken as the bundle gives them (checked against "
                    "its own manifest only: the course knows no published sha256 for this size)"
                )
            print(f"cache: {assets.cache_dir()}; tiktoken files in {assets.tiktoken_cache_dir()}")
            return 0
    except (assets.AssetError, CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 2
