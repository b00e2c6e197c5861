"""``python -m gpt2course train``: presets, JSON configs and overrides, ``torchrun`` set-up.

From the shell (``torchrun --standalone --nproc_per_node=N -m gpt2course train ...`` for N
processes)::

    python -m gpt2course train --preset shakespeare-bytes --out checkpoints/shakespeare
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from gpt2course.callbacks import PrintSamples
from gpt2course.checkpoint import check_checkpoint_dest, run_settings
from gpt2course.config import GPTConfig
from gpt2course.data import RandomBatches, encode_text, split_tokens
from gpt2course.device import distributed
from gpt2course.files import CheckpointError
from gpt2course.model import GPT
from gpt2course.tokenizer.named import Tokenizer, get_tokenizer
from gpt2course.train import TrainConfig, train

# The command line: python -m gpt2course train

_EVAL = dict(eval_interval=200, eval_batches=20, weight_decay=0.1)  # what every preset shares
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The notebook's default run: bytes, a 0.8M-parameter GPT; val 1.84 in under 2 minutes on
    # 2 CPU cores (docs/benchmarks.md).
    "shakespeare-bytes": {
        "model": dict(vocab_size=256, context_length=128, n_embd=128, n_layer=4, n_head=4),
        "data": dict(text="shakespeare", tokenizer="bytes", batch_size=16, context_length=128),
        "train": dict(max_steps=1200, learning_rate=2e-3, min_lr=2e-4, warmup_steps=50, **_EVAL),
    },
    # The catch-up checkpoint for later parts: GPT-2's tokenizer, so tiktoken reads its ids.
    # 338k tokens overfit fast: a 1500-step run on an H200 bottomed out at val 4.80 near
    # step 750 and rose to 5.13; hence 800 steps, with dropout.
    "shakespeare-gpt2": {
        "model": dict(
            vocab_size=50257, context_length=256, n_embd=256, n_layer=4, n_head=4, dropout=0.1
        ),
        "data": dict(text="shakespeare", tokenizer="gpt2", batch_size=16, context_length=256),
        "train": dict(max_steps=800, learning_rate=1e-3, min_lr=1e-4, warmup_steps=100, **_EVAL),
    },
    # GPT-2 124M with the GPT-3 paper's recipe for its size (as in Karpathy's build-nanogpt):
    # ~0.5M tokens per step whatever the GPU count.
    # Needs token files made beforehand (uint16 .bin, e.g. from FineWeb-Edu): data.train_bin.
    "gpt2-124m": {
        "model": dict(vocab_size=50304, context_length=1024, n_embd=768, n_layer=12, n_head=12),
        "data": dict(
            text=None,
            tokenizer="gpt2",
            batch_size=16,
            context_length=1024,
            total_batch_tokens=524288,
        ),
        "train": {
            **dict(max_steps=19073, learning_rate=6e-4, min_lr=6e-5, warmup_steps=715),
            **dict(_EVAL, eval_interval=250, compile=True),
        },
    },
}


DATA_DEFAULTS: dict[str, Any] = dict(
    text="shakespeare",  # "shakespeare", a UTF-8 text file, or a folder of .txt files
    tokenizer="bytes",
    val_fraction=0.1,
    batch_size=16,  # sequences per micro-batch, per process
    context_length=128,
    train_bin=None,  # pre-tokenized uint16 files instead of text (large corpora)
    val_bin=None,
    total_batch_tokens=None,  # if set, grad_accum_steps = this / (batch * block * processes)
)


def resolve_config(
    preset: str | None, config_file: str | None, overrides: Sequence[str], base: dict | None
) -> dict[str, dict[str, Any]]:
    """The run's {"model", "data", "train"} settings: preset (or ``base``, e.g. a checkpoint's
    own settings), then the JSON file, then KEY=VALUE."""
    cfg: dict[str, dict[str, Any]] = {"model": {}, "data": dict(DATA_DEFAULTS), "train": {}}
    if base is not None:
        for section in cfg:
            cfg[section].update(base.get(section, {}))

    def merge(src: dict, where: str) -> None:
        for section, values in src.items():
            if section == "preset":
                continue
            if section not in cfg or not isinstance(values, dict):
                raise ValueError(f"{where}: unknown section {section!r}; use model, data and train")
            cfg[section].update(values)

    file_cfg: dict = {}
    if config_file:
        if Path(config_file).is_dir():
            raise ValueError(f"--config {config_file} is a folder; pass a JSON file")
        try:
            file_cfg = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no config file {config_file}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{config_file} is not valid JSON: {e}") from None
        if not isinstance(file_cfg, dict):
            raise ValueError(
                f"{config_file} holds a JSON {type(file_cfg).__name__}; it must be an object: "
                '{"preset": ..., "model": {...}, "data": {...}, "train": {...}}'
            )
    default = "shakespeare-bytes" if not config_file and base is None else None
    preset = preset or file_cfg.get("preset") or default
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        merge(PRESETS[preset], f"preset {preset}")
    merge(file_cfg, config_file or "")
    for ov in overrides:
        key, eq, value = ov.partition("=")
        section, dot, name = key.partition(".")
        if not eq or not dot or section not in cfg:
            raise ValueError(
                f"override {ov!r} should look like train.max_steps=100 (model., data. or train.)"
            )
        try:
            cfg[section][name] = json.loads(value)
        except json.JSONDecodeError:
            cfg[section][name] = value  # a bare string such as a path
    data = cfg["data"]
    unknown = set(data) - set(DATA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown data keys {sorted(unknown)}; known: {sorted(DATA_DEFAULTS)}")
    # A data setting of the wrong type or range is named here, not met later in the loop.
    for key in ("batch_size", "context_length", "total_batch_tokens"):
        v, nullable = data[key], key == "total_batch_tokens"
        if not (type(v) is int and v >= 1) and not (nullable and v is None):  # a bool is no int
            or_null = " or null" if nullable else ""
            raise ValueError(f"data.{key} must be a positive integer{or_null}, got {v!r}")
    v = data["val_fraction"]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < 1:
        raise ValueError(f"data.val_fraction must be a number between 0 and 1, got {v!r}")
    for key in ("text", "tokenizer", "train_bin", "val_bin"):
        if data[key] is not None and not isinstance(data[key], str):
            raise ValueError(f"data.{key} must be a string, got {data[key]!r}")
    return cfg


def build_data(
    data: dict, seed: int, rank: int, world_size: int
) -> tuple[RandomBatches, RandomBatches, Tokenizer]:
    """Train and validation batch streams (this rank's shard) and the tokenizer, from data settings."""
    tok = get_tokenizer(data["tokenizer"])
    if data.get("train_bin"):
        train_ids = np.memmap(data["train_bin"], dtype=np.uint16, mode="r")
        if not data.get("val_bin"):
            raise ValueError("data.train_bin needs data.val_bin too (a held-out token file)")
        val_ids = np.memmap(data["val_bin"], dtype=np.uint16, mode="r")
    elif data.get("text"):
        train_ids, val_ids = split_tokens(encode_text(data["text"], tok), data["val_fraction"])
    else:
        raise ValueError(
            "no data: set data.text (a text file, a folder of .txt files, or 'shakespeare') or data.train_bin and "
            "data.val_bin (GPT-2 token ids as raw uint16, e.g. made from FineWeb-Edu)"
        )
    B, T = data["batch_size"], data["context_length"]
    train_batches = RandomBatches(train_ids, B, T, seed=seed, rank=rank, world_size=world_size)
    # Every process evaluates the same validation batches, so all report the same val loss.
    val_batches = RandomBatches(val_ids, B, T, seed=seed + 1)
    return train_batches, val_batches, tok


def _init_distributed() -> tuple[int, int, int]:
    """Join the process group when launched by torchrun: nccl on GPUs, gloo on CPUs."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        gpus = torch.cuda.is_available() and os.environ.get("GPT2COURSE_DEVICE") != "cpu"
        if gpus:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if gpus else "gloo")
    return distributed()


def main(argv: list[str] | None = None) -> int:
    """``python -m gpt2course train``: train from a preset or a JSON config, save a checkpoint."""
    p = argparse.ArgumentParser(
        prog="python -m gpt2course train",
        description="Train a GPT. Under `torchrun --standalone --nproc_per_node=N -m gpt2course "
        "train ...` it trains data-parallel on N processes.",
    )
    p.add_argument(
        "--config", help='JSON file: {"preset": ..., "model": {...}, "data": {...}, "train": {...}}'
    )
    p.add_argument(
        "--preset", help=f"start from one of: {', '.join(PRESETS)} (default shakespeare-bytes)"
    )
    p.add_argument("--out", help="checkpoint folder to write (safetensors + JSON)")
    p.add_argument(
        "--resume",
        help="checkpoint folder to carry on from (its own settings, unless --config/--preset)",
    )
    p.add_argument("--samples", action="store_true", help="print a sample at every evaluation")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved settings and exit"
    )
    p.add_argument(
        "overrides", nargs="*", help="section.key=value, e.g. train.max_steps=200 model.n_layer=2"
    )
    args = p.parse_args(argv)
    try:
        own = args.resume and not (args.config or args.preset)  # the checkpoint's settings
        base = run_settings(args.resume) if own else None
        cfg = resolve_config(args.preset, args.config, args.overrides, base)
        tcfg = TrainConfig.from_dict(cfg["train"])
        tcfg.validate()
        mcfg = GPTConfig(**cfg["model"])
        if args.out:
            check_checkpoint_dest(args.out)  # before the data is read and the first step taken
    except (ValueError, TypeError, OSError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg, indent=2))
        return 0
    rank, _, world = _init_distributed()
    try:
        data = cfg["data"]
        if data["total_batch_tokens"]:
            per = data["batch_size"] * data["context_length"] * world
            if data["total_batch_tokens"] % per:
                raise ValueError(
                    f"data.total_batch_tokens ({data['total_batch_tokens']}) must be a multiple of "
                    f"batch_size * context_length * processes = {per}"
                )
            tcfg.grad_accum_steps = data["total_batch_tokens"] // per
        if data["context_length"] > mcfg.context_length:
            raise ValueError(
                f"data.context_length ({data['context_length']}) is longer than model.context_length ({mcfg.context_length})"
            )
        train_b, val_b, tok = build_data(data, tcfg.seed, rank, world)
        if tok.vocab_size > mcfg.vocab_size:
            raise ValueError(
                f"the {tok.name} tokenizer has {tok.vocab_size} ids but model.vocab_size is {mcfg.vocab_size}"
            )
        tcfg.checkpoint_dir = args.out or tcfg.checkpoint_dir
        torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
        model = GPT(mcfg)
        if rank == 0:
            print(
                f"training a {model.num_params() / 1e6:.2f}M-parameter GPT on {world} process(es), "
                f"{tcfg.grad_accum_steps} micro-batch(es) of {data['batch_size']}x{data['context_length']} "
                f"tokens each per step, for {tcfg.max_steps} steps",
                file=sys.stderr,
            )
        callbacks = [PrintSamples(tok)] if args.samples else []
        extra = {"tokenizer": tok.name, "data": data}
        history = train(model, train_b, val_b, tcfg, callbacks, resume=args.resume, extra=extra)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0 and history.step:
        summary = {
            "steps": history.step[-1],
            "train_loss": round(history.train_loss[-1], 4),
            "val_loss": round(history.val_loss[-1], 4) if history.val_loss else None,
            "seconds": round(history.seconds[-1], 1),
            "checkpoint": args.out,
        }
        print(json.dumps(summary))
    return 0
