"""``python -m gpt2course bench tokenizer``: encoding speed against tiktoken, training
speed, and the incremental trainer against a naive recount-every-merge one."""

from __future__ import annotations

import os
import platform
from itertools import pairwise

import regex
import torch

from gpt2course.tokenizer import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    basic,
    load_gpt2_tokenizer,
    train_bpe,
)

from ._timing import best_of, parser, timed


def train_bpe_naive(text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN) -> BPETokenizer:
    """The textbook trainer: recount every pair in every chunk before each merge.

    Same pre-split and tie rule (the smallest pair) as ``train_bpe``, so same merges.
    """
    chunks = [list(c.encode("utf-8")) for c in regex.findall(pattern, text)]
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(256, vocab_size):
        counts: dict[tuple[int, int], int] = {}
        for ids in chunks:
            for pair in pairwise(ids):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        chunks = [basic.merge(ids, pair, new_id) for ids in chunks]
        merges[pair] = new_id
    return BPETokenizer(merges, pattern)


def main(argv: list[str]) -> int:
    """Print encoding and training speeds; see docs/benchmarks.md for recorded figures."""
    p = parser("tokenizer", __doc__)
    p.add_argument("--repeats", type=int, default=3, help="timing runs; the best counts")
    p.add_argument("--vocab-size", type=int, default=1256, help="train_bpe target (default 1256)")
    p.add_argument(
        "--naive-chars",
        type=int,
        default=100_000,
        help="the naive trainer is timed on this many leading characters (0 skips it)",
    )
    args = p.parse_args(argv)

    from gpt2course import assets

    if hasattr(os, "sched_setaffinity"):  # Linux: hold everything to one core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"

    text = assets.fetch("tinyshakespeare.txt").read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, pinned to {cores}, "
        f"Python {platform.python_version()}"
    )
    print(f"text: Tiny Shakespeare, {mb:.2f} MB, {len(text):,} characters\n")

    tik = assets.tiktoken_gpt2()
    ours = load_gpt2_tokenizer()
    ours._cache.clear()
    cpu = torch.device("cpu")
    cold, ids = timed(lambda: ours.encode_ordinary(text), cpu)
    if ids != tik.encode_ordinary(text):
        print("ERROR: our ids differ from tiktoken's")
        return 1
    warm = best_of(lambda: ours.encode_ordinary(text), cpu, args.repeats)
    t_tik = best_of(lambda: tik.encode_ordinary(text), cpu, args.repeats)  # one thread
    print(f"encode (GPT-2 vocabulary): {len(ids):,} ids, identical to tiktoken's")
    print(f"  tiktoken, one thread   {t_tik:7.3f} s  {mb / t_tik:6.1f} MB/s")
    for what, t in (("empty", cold), ("warm", warm)):
        print(
            f"  ours, {what + ' cache':<16} {t:7.3f} s  {mb / t:6.1f} MB/s  {t / t_tik:5.1f}x tiktoken's time"
        )

    t_train, tok = timed(lambda: train_bpe(text, args.vocab_size), cpu)
    print(f"\ntrain_bpe to vocab {args.vocab_size} ({len(tok.merges)} merges), all of the text")
    print(f"  incremental            {t_train:7.2f} s")
    if args.naive_chars:
        prefix = text[: args.naive_chars]
        t_fast, fast = timed(lambda: train_bpe(prefix, args.vocab_size), cpu)
        t_slow, slow = timed(lambda: train_bpe_naive(prefix, args.vocab_size), cpu)
        same = "same merges" if fast.merges == slow.merges else "DIFFERENT merges"
        print(
            f"  on the first {len(prefix):,} characters: incremental {t_fast:.2f} s, "
            f"naive recount {t_slow:.2f} s, {t_slow / t_fast:.0f}x faster ({same})"
        )
    return 0
