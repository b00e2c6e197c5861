"""Pretraining a GPT: the loss, AdamW, warmup + cosine, clipping, accumulation, evaluation,
checkpoints, and data-parallel training under ``torchrun``.

In a notebook::

    history = train(model, train_batches, val_batches, TrainConfig(max_steps=500),
                    callbacks=[LivePlot(), PrintSamples(tokenizer)])

From the shell (``torchrun --standalone --nproc_per_node=N -m gpt2course train ...`` for N
processes)::

    python -m gpt2course train --preset shakespeare-bytes --out checkpoints/shakespeare
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import Checkpoint, load_checkpoint, restore_rng, run_settings, save_checkpoint
from .files import CheckpointError
from .model import GPT, GPTConfig

Batch = tuple[torch.Tensor, torch.Tensor]

# ----------------------------------------------------------------------------------------
# The pieces a learner writes in notebook 06


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token ``logits`` (B, T, V) against ``targets`` (B, T)."""
    # cross_entropy wants classes in dim 1, so flatten (B, T) into one batch of B*T predictions.
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def lr_schedule(
    step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    """Learning rate at ``step`` (0-based): linear warmup to ``max_lr``, cosine decay to ``min_lr``."""
    if step < warmup_steps:
        # step + 1: the very first step already learns a little instead of taking lr = 0.
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def configure_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW that decays only the 2-D weights (matmuls, embeddings), not biases or LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]  # the tied weight appears once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[Batch],
    lr: float,
    grad_clip: float = 1.0,
    *,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One optimizer step over ``micro_batches`` (gradient accumulation); returns the mean loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    total = torch.zeros(())
    for i, (x, y) in enumerate(micro_batches):
        # Under DDP every backward all-reduces the gradients; only the last one needs to.
        last = i == n - 1
        sync = (
            contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        )
        with sync:
            with _autocast(x.device, autocast_dtype):
                _, loss = model(x, y)
            # Dividing by n makes the summed gradients the mean over all micro-batches.
            scaled = loss / n
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total = total.to(loss.device) + loss.detach().float()
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return (total / n).item()


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val_batches: Iterable[Batch],
    max_batches: int = 20,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Mean loss over the first ``max_batches`` batches of ``val_batches`` (model in eval mode)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for i, (x, y) in enumerate(val_batches):
        if i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        with _autocast(device, autocast_dtype):
            _, loss = model(x, y)
        losses.append(loss.float().item())
    model.train(was_training)
    if not losses:
        raise ValueError("the validation loader gave no batches; give it at least one")
    return sum(losses) / len(losses)


# ----------------------------------------------------------------------------------------
# Tokenizers and data


@dataclass(frozen=True)
class Tokenizer:
    """The two tokenizers training uses: raw UTF-8 bytes (256 ids) or GPT-2's BPE (50257)."""

    name: str
    vocab_size: int
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def get_tokenizer(name: str) -> Tokenizer:
    """``"bytes"`` (UTF-8 bytes, vocab 256) or ``"gpt2"`` (tiktoken's GPT-2 BPE, vocab 50257)."""
    if name == "bytes":
        return Tokenizer(
            "bytes",
            256,
            lambda s: list(s.encode("utf-8")),
            lambda ids: bytes(ids).decode("utf-8", errors="replace"),
        )
    if name == "gpt2":
        from .assets import tiktoken_gpt2

        enc = tiktoken_gpt2()
        return Tokenizer("gpt2", enc.n_vocab, enc.encode_ordinary, enc.decode)
    raise ValueError(f"unknown tokenizer {name!r}; choose 'bytes' or 'gpt2'")


def load_text(name_or_path: str = "shakespeare") -> str:
    """The text of ``"shakespeare"`` (Tiny Shakespeare), another course text, or a UTF-8 file."""
    from . import data

    name = "tinyshakespeare" if name_or_path == "shakespeare" else name_or_path
    if name in data.TEXTS:
        return data.load_text(name)
    p = Path(name_or_path)
    if not p.is_file():
        raise FileNotFoundError(
            f"no text file {p}; pass 'shakespeare', one of {sorted(data.TEXTS)}, "
            "or the path of a UTF-8 text file"
        )
    return p.read_text(encoding="utf-8")


def split_tokens(
    ids: Sequence[int] | torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split token ids into (train, val): the last ``val_fraction`` is validation, unseen in training."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    t = torch.as_tensor(ids, dtype=torch.long)
    n = int(len(t) * (1 - val_fraction))
    return t[:n], t[n:]


class RandomBatches:
    """An endless, reproducible stream of ``(x, y)`` batches of random windows of a token array.

    Batch ``n`` depends only on ``(seed, n)``, so a run can resume at any position. Under
    data parallelism rank ``r`` of ``W`` takes global batches ``r, W + r, 2W + r, ...``: the
    ranks see disjoint shards of each step's data, and together exactly what one process
    with ``W`` times the gradient accumulation would see.
    """

    def __init__(
        self,
        tokens: torch.Tensor | np.ndarray,
        batch_size: int,
        block_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(tokens) < block_size + 2:
            raise ValueError(
                f"only {len(tokens)} tokens: a window needs block_size + 1 = {block_size + 1}; "
                "use a smaller block_size or more text"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.tokens = tokens
        self.batch_size = batch_size
        self.block_size = block_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def batch(self, n: int) -> Batch:
        """The ``n``-th batch of this rank: x and y, each (batch_size, block_size)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n * self.world_size + self.rank)
        starts = torch.randint(
            len(self.tokens) - self.block_size - 1, (self.batch_size, 1), generator=g
        )
        idx = starts + torch.arange(self.block_size)  # (B, T)
        return self._gather(idx), self._gather(idx + 1)  # y is x shifted by one token

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        if isinstance(self.tokens, np.ndarray):  # e.g. a np.memmap of a large .bin file
            return torch.from_numpy(self.tokens[idx.numpy()].astype(np.int64))
        return self.tokens[idx]

    def stream(self, start: int = 0) -> Iterator[Batch]:
        """Batches ``start``, ``start + 1``, ... forever."""
        n = start
        while True:
            yield self.batch(n)
            n += 1

    def __iter__(self) -> Iterator[Batch]:
        return self.stream(0)


def _stream(loader: Iterable[Batch], start: int) -> Iterator[Batch]:
    """Batches from ``start`` on; loaders without ``stream`` are replayed epoch after epoch."""
    if hasattr(loader, "stream"):
        yield from loader.stream(start)
        return
    n = 0
    while True:
        empty = True
        for b in loader:
            empty = False
            if n >= start:
                yield b
            n += 1
        if empty:
            raise ValueError("the training loader gave no batches")


# ----------------------------------------------------------------------------------------
# The training loop


@dataclass
class TrainConfig:
    """How to train. Steps count optimizer updates; each sees ``grad_accum_steps`` micro-batches."""

    max_steps: int = 2000
    learning_rate: float = 1e-3  # peak, reached at the end of warmup
    min_lr: float = 1e-4  # where the cosine ends
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    grad_accum_steps: int = 1  # micro-batches per step, per process
    eval_interval: int = 100  # steps between validation losses (and the last step)
    eval_batches: int = 20
    max_seconds: float | None = None  # stop early after this long (the schedule is unchanged)
    device: str | None = None  # None: cuda, else mps, else cpu
    precision: str = "auto"  # auto: bf16 on Ampere+, fp16 on older GPUs, fp32 on CPU
    compile: bool = False  # torch.compile the model (GPU; slow to start)
    seed: int = 1337  # seeds dropout; the model's initial weights are the caller's
    checkpoint_dir: str | None = None  # save here every checkpoint_interval steps and at the end
    checkpoint_interval: int = 0
    progress: bool = True  # tqdm bar

    def lr_at(self, step: int) -> float:
        """The learning rate at ``step`` under this config's schedule."""
        return lr_schedule(
            step,
            max_lr=self.learning_rate,
            min_lr=self.min_lr,
            warmup_steps=self.warmup_steps,
            max_steps=self.max_steps,
        )

    def to_dict(self) -> dict:
        """A plain dict, for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from a dict; unknown keys are an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be at least 1, got {self.grad_accum_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be 0 or more, got {self.warmup_steps}")
        if self.min_lr > self.learning_rate:
            raise ValueError(
                f"min_lr ({self.min_lr}) is above learning_rate ({self.learning_rate})"
            )
        if self.eval_interval < 1 or self.eval_batches < 1:
            raise ValueError("eval_interval and eval_batches must be at least 1")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")


@dataclass
class History:
    """The losses of a run: one train loss per step, a validation loss every eval_interval."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # tokens seen so far, all processes
    seconds: list[float] = field(default_factory=list)  # wall time since the start
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    @property
    def val_perplexity(self) -> list[float]:
        """exp(val loss): the model is as unsure as a uniform pick among this many tokens."""
        return [math.exp(v) for v in self.val_loss]

    def to_dict(self) -> dict:
        """A plain dict, for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """The inverse of ``to_dict``."""
        return cls(**{f.name: list(d.get(f.name, [])) for f in fields(cls)})


@dataclass
class TrainState:
    """What callbacks see: the run so far."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    history: History
    is_main: bool = True  # rank 0 (callbacks that print or plot act only there)


class Callback:
    """Hooks that ``train`` calls; override the ones you need."""

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step."""

    def on_step(self, state: TrainState) -> None:
        """After every optimizer step."""

    def on_eval(self, state: TrainState) -> None:
        """After each validation loss is added to ``state.history``."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step."""


def _check_batch(batch: Batch, model: nn.Module) -> None:
    """Fail early, and clearly, on batches the model cannot take."""
    x, y = batch
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(
            f"a batch must be (x, y) token ids of the same shape (batch, time); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    top = int(max(x.max(), y.max()))
    if vocab is not None and top >= vocab:
        raise ValueError(
            f"the data has token id {top} but the model's vocab_size is {vocab}; "
            "build the model with the tokenizer's vocabulary size"
        )


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) of this process; (0, 0, 1) when not data-parallel."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size()
    return 0, 0, 1


def _precision(device: torch.device, precision: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed)."""
    from .device import has_native_bf16

    if precision == "auto":
        if device.type != "cuda":
            return None, False
        precision = "bf16" if has_native_bf16(device) else "fp16"
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False
    return torch.float16, device.type == "cuda"  # fp16 gradients underflow without scaling


def train(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch] | None,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    *,
    resume: Checkpoint | str | Path | None = None,
    extra: dict | None = None,
) -> History:
    """Train ``model`` for ``config.max_steps`` optimizer steps and return the loss history.

    ``train_loader`` yields ``(x, y)`` token batches (a ``RandomBatches`` resumes exactly;
    other loaders are replayed from the start). ``resume`` is a checkpoint (or its folder)
    to carry on from: weights, AdamW state, step, data position and history. ``extra`` is
    stored in every checkpoint (e.g. the tokenizer's name). Under ``torchrun`` with an
    initialised process group the model is wrapped in DistributedDataParallel.
    """
    from tqdm import tqdm

    from .device import pick_device

    config.validate()
    rank, local_rank, world = _distributed()
    is_main = rank == 0
    device = pick_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    torch.manual_seed(config.seed + rank)  # dropout masks differ per rank, as they should
    if isinstance(resume, (str, Path)):
        resume = load_checkpoint(resume)
    if resume is not None:
        model.load_state_dict(resume.model.state_dict())
    model.to(device)
    model.train()
    raw_model = model
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = configure_optimizer(
        raw_model,
        config.learning_rate,
        config.weight_decay,
        (config.beta1, config.beta2),
        config.eps,
    )
    autocast_dtype, needs_scaler = _precision(device, config.precision)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    history = History()
    step, position = 0, 0
    if resume is not None:
        if resume.optimizer_state is None:
            raise ValueError(
                f"the checkpoint {resume.path} has no optimizer state, so training cannot resume "
                "exactly; load its model and start a new run instead"
            )
        optimizer.load_state_dict(resume.optimizer_state)
        if scaler is not None and resume.scaler_state:
            scaler.load_state_dict(resume.scaler_state)
        step, position = resume.step, resume.data_position
        history = History.from_dict(resume.history or {})
        if world == 1:
            restore_rng(resume.rng_state)
    if config.compile:
        model = torch.compile(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)

    state = TrainState(step, raw_model, optimizer, config, history, is_main)
    batches = _stream(train_loader, position)
    t0 = time.perf_counter() - (history.seconds[-1] if history.seconds else 0.0)
    tokens = history.tokens[-1] if history.tokens else 0
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        disable=not (config.progress and is_main),
        desc="training",
        dynamic_ncols=True,
        file=sys.stderr,
    )

    def save() -> None:
        if config.checkpoint_dir and is_main:
            save_checkpoint(
                config.checkpoint_dir,
                raw_model,
                optimizer=optimizer,
                step=step,
                data_position=position,
                history=history.to_dict(),
                train_config=config.to_dict(),
                scaler_state=scaler.state_dict() if scaler is not None else None,
                extra=extra,
            )

    try:
        for cb in callbacks:
            cb.on_train_start(state)
        started = time.perf_counter()
        first = True
        while step < config.max_steps:
            if (
                config.max_seconds is not None
                and time.perf_counter() - started > config.max_seconds
            ):
                if is_main:
                    print(
                        f"stopping at step {step}: max_seconds={config.max_seconds} reached",
                        file=sys.stderr,
                    )
                break
            lr = config.lr_at(step)
            micro = []
            for _ in range(config.grad_accum_steps):
                x, y = next(batches)
                micro.append((x.to(device, non_blocking=True), y.to(device, non_blocking=True)))
            if first:  # a bad batch fails here with a clear message, not deep in an embedding
                _check_batch(micro[0], raw_model)
                first = False
            loss = train_step(
                model,
                optimizer,
                micro,
                lr,
                config.grad_clip,
                autocast_dtype=autocast_dtype,
                scaler=scaler,
            )
            if world > 1:
                import torch.distributed as dist

                t = torch.tensor([loss], dtype=torch.float64, device=device)
                dist.all_reduce(t)
                loss = t.item() / world
            step += 1
            position += config.grad_accum_steps
            tokens += sum(x.numel() for x, _ in micro) * world
            history.step.append(step)
            history.train_loss.append(loss)
            history.lr.append(lr)
            history.tokens.append(tokens)
            history.seconds.append(time.perf_counter() - t0)
            state.step = step
            bar.update(1)
            postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}"}
            if history.val_loss:
                postfix["val"] = f"{history.val_loss[-1]:.3f}"
            bar.set_postfix(postfix, refresh=False)
            for cb in callbacks:
                cb.on_step(state)
            if val_loader is not None and (
                step % config.eval_interval == 0 or step == config.max_steps
            ):
                val = evaluate(
                    raw_model, val_loader, config.eval_batches, autocast_dtype=autocast_dtype
                )
                history.val_step.append(step)
                history.val_loss.append(val)
                for cb in callbacks:
                    cb.on_eval(state)
            if config.checkpoint_interval and step % config.checkpoint_interval == 0:
                save()
    finally:
        bar.close()  # also when a callback or Ctrl-C stops the run
    if config.checkpoint_dir and not (
        config.checkpoint_interval and step % config.checkpoint_interval == 0
    ):
        save()
    for cb in callbacks:
        cb.on_train_end(state)
    return history


# ----------------------------------------------------------------------------------------
# Callbacks for notebooks


@torch.no_grad()
def sample(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompt: str = "\n",
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> str:
    """Text the model writes after ``prompt`` (seeded, so the same model gives the same text)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ctx = model.config.n_positions
    g = torch.Generator(device=device).manual_seed(seed)
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty; give at least one character, e.g. '\\n'")
    idx = torch.tensor([ids], device=device)  # (1, T)
    for _ in range(max_new_tokens):
        logits = model(idx[:, -ctx:])[:, -1, :].float() / max(temperature, 1e-6)  # (1, V)
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g)  # (1, 1)
        idx = torch.cat([idx, nxt], dim=1)
    model.train(was_training)
    return tokenizer.decode(idx[0, len(ids) :].tolist())


class PrintSamples(Callback):
    """Print a short seeded sample at every evaluation, to watch the model learn."""

    def __init__(
        self, tokenizer: Tokenizer, prompt: str = "\n", max_new_tokens: int = 120, seed: int = 0
    ):
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.seed = seed

    def on_eval(self, state: TrainState) -> None:
        if not state.is_main:
            return
        text = sample(state.model, self.tokenizer, self.prompt, self.max_new_tokens, seed=self.seed)
        val = state.history.val_loss[-1]
        print(f"--- step {state.step}, val loss {val:.3f} ---\n{text.strip()}\n", flush=True)


def plot_history(history: History, ax_loss=None, ax_lr=None):
    """Train and validation loss against step (and the learning rate, given a second axis)."""
    import matplotlib.pyplot as plt

    if ax_loss is None:
        fig, ax_loss = plt.subplots(figsize=(5, 3))
    ax_loss.plot(history.step, history.train_loss, lw=0.8, alpha=0.6, label="train")
    if history.val_loss:
        ax_loss.plot(history.val_step, history.val_loss, "o-", ms=3, label="validation")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (nats/token)")
    ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    if ax_lr is not None:
        ax_lr.plot(history.step, history.lr, color="tab:green")
        ax_lr.set_xlabel("step")
        ax_lr.set_ylabel("learning rate")
        ax_lr.grid(alpha=0.3)
    return ax_loss.figure


class LivePlot(Callback):
    """A loss plot that redraws in place while training runs (Jupyter/Colab); silent elsewhere."""

    def __init__(self, every_seconds: float = 2.0, figsize: tuple[float, float] = (9, 3)):
        self.every_seconds = every_seconds
        self.figsize = figsize
        self._handle = None
        self._last = 0.0

    def _draw(self, state: TrainState) -> None:
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=self.figsize, gridspec_kw={"width_ratios": [2, 1]})
        plot_history(state.history, a, b)
        a.set_title(f"step {state.step} / {state.config.max_steps}")
        fig.tight_layout()
        plt.close(fig)  # shown through the display handle only, not again at the cell's end
        if self._handle is None:
            from IPython.display import display

            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        self._last = time.perf_counter()

    def _active(self, state: TrainState) -> bool:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        return state.is_main and get_ipython() is not None

    def on_step(self, state: TrainState) -> None:
        if self._active(state) and time.perf_counter() - self._last >= self.every_seconds:
            self._draw(state)

    def on_train_end(self, state: TrainState) -> None:
        if self._active(state) and state.history.step:
            self._draw(state)


# ----------------------------------------------------------------------------------------
# The command line: python -m gpt2course train

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The notebook's default run: bytes, a 0.8M-parameter GPT; val 1.84 in under 2 minutes on
    # 2 CPU cores (docs/benchmarks.md).
    "shakespeare-bytes": {
        "model": dict(vocab_size=256, n_positions=128, n_embd=128, n_layer=4, n_head=4),
        "data": dict(text="shakespeare", tokenizer="bytes", batch_size=16, block_size=128),
        "train": dict(
            max_steps=1200,
            learning_rate=2e-3,
            min_lr=2e-4,
            warmup_steps=50,
            eval_interval=200,
            eval_batches=20,
            weight_decay=0.1,
        ),
    },
    # The catch-up checkpoint for later parts: GPT-2's tokenizer, so tiktoken reads its ids.
    # 338k tokens overfit fast: a 1500-step run on an H200 bottomed out at val 4.80 near
    # step 750 and rose to 5.13; hence 800 steps, with dropout.
    "shakespeare-gpt2": {
        "model": dict(
            vocab_size=50257, n_positions=256, n_embd=256, n_layer=4, n_head=4, dropout=0.1
        ),
        "data": dict(text="shakespeare", tokenizer="gpt2", batch_size=16, block_size=256),
        "train": dict(
            max_steps=800,
            learning_rate=1e-3,
            min_lr=1e-4,
            warmup_steps=100,
            eval_interval=200,
            eval_batches=20,
            weight_decay=0.1,
        ),
    },
    # GPT-2 124M with the GPT-3 paper's recipe for its size (as in Karpathy's build-nanogpt):
    # ~0.5M tokens per step whatever the GPU count.
    # Needs token files made beforehand (uint16 .bin, e.g. from FineWeb-Edu): data.train_bin.
    "gpt2-124m": {
        "model": dict(vocab_size=50304, n_positions=1024, n_embd=768, n_layer=12, n_head=12),
        "data": dict(
            text=None, tokenizer="gpt2", batch_size=16, block_size=1024, total_batch_tokens=524288
        ),
        "train": dict(
            max_steps=19073,
            learning_rate=6e-4,
            min_lr=6e-5,
            warmup_steps=715,
            eval_interval=250,
            eval_batches=20,
            weight_decay=0.1,
            compile=True,
        ),
    },
}

DATA_DEFAULTS: dict[str, Any] = dict(
    text="shakespeare",  # "shakespeare" or a path to a UTF-8 text file
    tokenizer="bytes",
    val_fraction=0.1,
    batch_size=16,  # sequences per micro-batch, per process
    block_size=128,
    train_bin=None,  # pre-tokenized uint16 files instead of text (large corpora)
    val_bin=None,
    total_batch_tokens=None,  # if set, grad_accum_steps = this / (batch * block * processes)
)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string such as a path


def resolve_config(
    preset: str | None = None,
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    base: dict[str, dict[str, Any]] | None = None,
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
        try:
            file_cfg = json.loads(Path(config_file).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no config file {config_file}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{config_file} is not valid JSON: {e}") from e
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
        cfg[section][name] = _parse_value(value)
    unknown = set(cfg["data"]) - set(DATA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown data keys {sorted(unknown)}; known: {sorted(DATA_DEFAULTS)}")
    return cfg


def build_data(
    data: dict[str, Any], seed: int, rank: int = 0, world_size: int = 1
) -> tuple[RandomBatches, RandomBatches, Tokenizer]:
    """Train and validation batch streams (this rank's shard) and the tokenizer, from data settings."""
    tok = get_tokenizer(data["tokenizer"])
    if data.get("train_bin"):
        train_ids = np.memmap(data["train_bin"], dtype=np.uint16, mode="r")
        if not data.get("val_bin"):
            raise ValueError("data.train_bin needs data.val_bin too (a held-out token file)")
        val_ids = np.memmap(data["val_bin"], dtype=np.uint16, mode="r")
    elif data.get("text"):
        train_ids, val_ids = split_tokens(tok.encode(load_text(data["text"])), data["val_fraction"])
    else:
        raise ValueError(
            "no data: set data.text (a text file, or 'shakespeare') or data.train_bin and "
            "data.val_bin (GPT-2 token ids as raw uint16, e.g. made from FineWeb-Edu)"
        )
    B, T = data["batch_size"], data["block_size"]
    train_batches = RandomBatches(train_ids, B, T, seed=seed, rank=rank, world_size=world_size)
    # Every process evaluates the same validation batches, so all report the same val loss.
    val_batches = RandomBatches(val_ids, B, T, seed=seed + 1)
    return train_batches, val_batches, tok


def _init_distributed() -> tuple[int, int, int]:
    """Join the process group when launched by torchrun: nccl on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return _distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = os.environ.get("GPT2COURSE_DEVICE", "")
    if torch.cuda.is_available() and want != "cpu":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return _distributed()


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
        base = None
        if args.resume and not (args.config or args.preset):
            base = run_settings(args.resume)
        cfg = resolve_config(args.preset, args.config, args.overrides, base=base)
        tcfg = TrainConfig.from_dict(cfg["train"])
        mcfg = GPTConfig(**cfg["model"])
    except (ValueError, TypeError, FileNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg, indent=2))
        return 0
    rank, _, world = _init_distributed()
    try:
        data = cfg["data"]
        if data["total_batch_tokens"]:
            per = data["batch_size"] * data["block_size"] * world
            if data["total_batch_tokens"] % per:
                raise ValueError(
                    f"data.total_batch_tokens ({data['total_batch_tokens']}) must be a multiple of "
                    f"batch_size * block_size * processes = {per}"
                )
            tcfg.grad_accum_steps = data["total_batch_tokens"] // per
        if data["block_size"] > mcfg.n_positions:
            raise ValueError(
                f"data.block_size ({data['block_size']}) is longer than model.n_positions ({mcfg.n_positions})"
            )
        train_b, val_b, tok = build_data(data, tcfg.seed, rank, world)
        if tok.vocab_size > mcfg.vocab_size:
            raise ValueError(
                f"the {tok.name} tokenizer has {tok.vocab_size} ids but model.vocab_size is {mcfg.vocab_size}"
            )
        if args.out:
            tcfg.checkpoint_dir = args.out
        torch.manual_seed(tcfg.seed)  # the same initial weights on every rank
        model = GPT(mcfg)
        if rank == 0:
            n = model.num_params()
            print(
                f"training a {n / 1e6:.2f}M-parameter GPT on {world} process(es), "
                f"{tcfg.grad_accum_steps} micro-batch(es) of {data['batch_size']}x{data['block_size']} "
                f"tokens each per step, for {tcfg.max_steps} steps",
                file=sys.stderr,
            )
        callbacks = [PrintSamples(tok)] if args.samples else []
        history = train(
            model,
            train_b,
            val_b,
            tcfg,
            callbacks,
            resume=args.resume,
            extra={"tokenizer": tok.name, "data": data},
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        import torch.distributed as dist

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
