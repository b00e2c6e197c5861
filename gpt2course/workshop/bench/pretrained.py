"""Host memory and time of loading a GPT-2 checkpoint, at the real size.

    python -m gpt2course bench pretrained --model gpt2-xl     # writes ~6.4 GB, then deletes it

A checkpoint of the real shape with random weights is written to a temporary folder in the
hub file's layout (streamed, one tensor at a time, so writing it needs no big memory), and
each loader runs in a fresh subprocess that reports its peak resident memory (ru_maxrss).
The goal: ``load_pretrained`` peaks at no more than about 1.3x the model's own size.
For comparison: the same tensors read through ``safetensors.safe_open`` (memory-mapped), and
``transformers``' own ``from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gpt2course.model import GPTConfig
from gpt2course.pretrained.convert import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    config_from_hf,
    hf_config_dict,
    to_hf_state_dict,
)
from gpt2course.pretrained.load import empty_model, load_pretrained, load_tensors


def write_random_checkpoint(config: GPTConfig, folder: Path, seed: int = 0) -> Path:
    """A .safetensors file (+ config.json) of this shape with random weights, in the hub
    file's key layout (with the old mask buffers), written one tensor at a time."""
    meta = to_hf_state_dict(empty_model(config), prefix="")  # shapes only, on the meta device
    shapes = {k: tuple(t.shape) for k, t in meta.items()}
    n = config.context_length
    for i in range(config.n_layer):
        shapes[f"h.{i}.attn.bias"] = (1, 1, n, n)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key, shape in shapes.items():
        end = offset + 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors aligns the data to 8 bytes
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    with open(folder / WEIGHTS_FILE, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for key, shape in shapes.items():
            t = (
                torch.ones(shape).tril()
                if key.endswith(".attn.bias")
                else torch.empty(shape).normal_(0, 0.02, generator=gen)
            )
            f.write(t.numpy().tobytes())
            del t
    (folder / CONFIG_FILE).write_text(json.dumps(hf_config_dict(config)), encoding="utf-8")
    return folder


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _current_rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak so far is the best there is
        return _peak_rss_bytes()


def _child(folder: str, reader: str) -> None:
    """Load once and print a JSON line: peak RSS before and after, model bytes, seconds."""
    torch.ones(1) @ torch.ones(1)  # let torch allocate its own runtime memory first
    before = _current_rss_bytes()
    t0 = time.perf_counter()
    if reader == "load_pretrained":
        model = load_pretrained(folder)
    elif reader == "transformers":
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel.from_pretrained(folder)
    else:
        from safetensors import safe_open

        cfg = config_from_hf(json.loads((Path(folder) / CONFIG_FILE).read_text()))
        model = empty_model(cfg, "cpu")
        with safe_open(str(Path(folder) / WEIGHTS_FILE), "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            load_tensors(model, shapes, f.get_tensor)
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    # A loader may map the file and read it lazily: one forward touches every weight.
    with torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long))
    size = sum(p.numel() * p.element_size() for p in model.parameters())  # tied: counted once
    out = {"before": before, "peak": peak, "peak_used": _peak_rss_bytes(), "model": size}
    print(json.dumps(out | {"seconds": seconds}))


def main(argv: list[str] | None = None) -> int:
    """Write a random checkpoint of the real shape, measure each loader, delete the file."""
    p = argparse.ArgumentParser(prog="python -m gpt2course bench pretrained", description=__doc__)
    p.add_argument("--model", default="gpt2-xl", help="which size's shape (default gpt2-xl)")
    p.add_argument(
        "--dir", default=None, help="where to write the checkpoint (default: a temp folder)"
    )
    p.add_argument(
        "--readers",
        default="load_pretrained,safe_open",
        help="comma-separated: load_pretrained, safe_open, transformers (from_pretrained)",
    )
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "READER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    config = GPTConfig.from_name(args.model)
    root = Path(tempfile.mkdtemp(prefix="gpt2course-bench-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        folder = write_random_checkpoint(config, root / args.model)
        gb, seconds = os.path.getsize(folder / WEIGHTS_FILE) / 1e9, time.perf_counter() - t0
        print(f"{args.model} shape, random weights: {gb:.2f} GB file written in {seconds:.0f} s")
        print(
            f"{'loader':<18}{'model GB':>10}{'peak RSS GB':>13}{'peak/model':>12}"
            f"{'added/model':>13}{'after use':>11}{'seconds':>9}"
        )
        for reader in args.readers.split(","):
            cmd = [sys.executable, "-m", "gpt2course", "bench", "pretrained", "--child"]
            cmd += [str(folder), reader]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{reader:<18}{r['model'] / 1e9:>10.2f}{r['peak'] / 1e9:>13.2f}{r['peak'] / r['model']:>12.2f}"
                f"{(r['peak'] - r['before']) / r['model']:>13.2f}"
                f"{r['peak_used'] / r['model']:>11.2f}{r['seconds']:>9.1f}"
            )
        print(
            "peak/model: the process's peak resident memory over the model's size; "
            "added/model: the same less what Python and torch held before loading; after use: "
            "peak/model once a forward pass has touched every weight"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0
