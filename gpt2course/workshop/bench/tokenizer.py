"""``python -m gpt2course bench tokenizer``: encoding speed against tiktoken, training
speed (against Hugging Face ``tokenizers`` too), the incremental trainer against a naive
recount-every-merge one, and the streaming encode's peak memory against tiktoken's."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import regex
import torch

from gpt2course.tokenizer import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    basic,
    load_gpt2_tokenizer,
    train_bpe,
)
from gpt2course.tokenizer.named import TiktokenGPT2

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


def train_hf_bpe(text: str, vocab_size: int):
    """Hugging Face ``tokenizers``' byte-level BPE trained on ``text`` as GPT-2's was made: the
    256 bytes first, GPT-2's pre-split (``ByteLevel``), ``vocab_size - 256`` merges."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # optional: transformers'

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    return tok


# Run in a fresh interpreter per way of encoding, so each peak is its own: the extra resident
# memory that encoding the file costs, once the tokenizer is loaded. Writing 5 to clear_refs
# resets the kernel's peak (VmHWM) to the present RSS, so loading's own peak does not count.
_MEMORY_PROBE = """
import sys
from gpt2course.tokenizer.named import TiktokenGPT2
way, path = sys.argv[1], sys.argv[2]
tok = TiktokenGPT2()
tok.enc.encode_ordinary("load the ranks first")
def kib(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
open("/proc/self/clear_refs", "w").write("5")
base = kib("VmRSS:")
if way == "tiktoken":
    n = len(tok.enc.encode_ordinary(open(path, encoding="utf-8").read()))
elif way == "encode":
    n = len(tok.encode(open(path, encoding="utf-8").read()))
elif way == "stream":
    with open(path, encoding="utf-8") as f:
        n = sum(1 for _ in tok.encode_iterable(f))
else:
    n = 0
print(n, (kib("VmHWM:") - base) * 1024)
"""


def encode_memory(path: Path, way: str) -> tuple[int, float]:
    """(ids, extra MiB at the peak) of encoding the file at ``path`` in a fresh process:
    ``"tiktoken"`` (read whole, tiktoken's encode_ordinary), ``"encode"`` (read whole,
    ``TiktokenGPT2.encode``, which cuts it in pieces), ``"stream"`` (the file object
    line by line through ``encode_iterable``) or ``"nothing"`` (the floor of the measure)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, way, str(path)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1]) / 2**20


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
    p.add_argument(
        "--hf-vocab",
        default="1000,10000",
        help="vocab sizes to train with ours and Hugging Face tokenizers ('' skips them)",
    )
    p.add_argument(
        "--memory-copies",
        type=int,
        default=5,
        help="peak memory of encoding this many copies of the text as one file (0 skips it)",
    )
    args = p.parse_args(argv)
    os.environ["RAYON_RS_NUM_CPUS"] = "1"  # tokenizers' thread pool: one thread, as ours

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

    named = TiktokenGPT2()
    lines = text.splitlines(keepends=True)
    t_stream = best_of(lambda: sum(1 for _ in named.encode_iterable(lines)), cpu, args.repeats)
    print(
        f"  encode_iterable, by line {t_stream:7.3f} s  {mb / t_stream:6.1f} MB/s  "
        f"{t_stream / t_tik:5.1f}x tiktoken's time (the same ids)"
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
    vocabs = [int(v) for v in args.hf_vocab.split(",") if v]
    if vocabs:
        import tokenizers

        print(
            f"\ntrain to vocab V on all of the text, one thread, best of {args.repeats}: "
            f"ours vs tokenizers {tokenizers.__version__}"
        )
        for v in vocabs:
            t_ours = best_of(lambda v=v: train_bpe(text, v), cpu, args.repeats)
            t_hf = best_of(lambda v=v: train_hf_bpe(text, v), cpu, args.repeats)
            hf = train_hf_bpe(text, v)
            print(
                f"  V={v:>6,}  ours {t_ours:7.2f} s   tokenizers {t_hf:7.2f} s   "
                f"ours / theirs {t_ours / t_hf:4.2f}  (theirs: {hf.get_vocab_size():,} tokens)"
            )
    if args.memory_copies:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "text.txt"
            path.write_text(text * args.memory_copies, encoding="utf-8")
            size = path.stat().st_size / 1e6
            print(
                f"\npeak extra memory encoding one {size:.1f} MB file ({args.memory_copies} copies), fresh process each"
            )
            floor = encode_memory(path, "nothing")[1]
            n_tik, m_tik = encode_memory(path, "tiktoken")
            n_enc, m_enc = encode_memory(path, "encode")
            n_str, m_str = encode_memory(path, "stream")
            if not n_tik == n_enc == n_str:
                print("ERROR: the stream's ids differ in number from tiktoken's")
                return 1
            print(
                f"  tiktoken, whole text read then encoded   {m_tik:6.1f} MiB ({n_tik:,} ids kept)"
            )
            print(
                f"  TiktokenGPT2.encode, whole text          {m_enc:6.1f} MiB ({n_enc:,} ids kept)"
            )
            print(
                f"  encode_iterable, file line by line       {m_str:6.1f} MiB (ids consumed as they come)"
            )
            print(f"  the measure's floor (load, encode nothing) {floor:4.1f} MiB")
    return 0
