"""Pretraining a GPT: the loss, AdamW, warmup + cosine, clipping, accumulation, evaluation,
checkpoints, and data-parallel training under ``torchrun``.

In a notebook::

    history = train(model, train_batches, val_batches, TrainConfig(max_steps=500),
                    callbacks=[LivePlot(), PrintSamples(tokenizer)])

The pieces around the loop live in their own modules and are re-exported here, since the
notebooks import them from ``gpt2course.train``: the tokenizers (``tokenizer.named``), the
data (``data``) and the callbacks and plots (``callbacks``). The command line, with its
presets, is ``gpt2course.workshop.train``.

About 570 lines, over the package's ~450, on purpose: what is left is one idea, the pieces
notebook 06 has the learner write and the loop that runs them, read top to bottom.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import torch
import torch.nn as nn

from .callbacks import Callback, LivePlot, PrintSamples, TrainState, plot_history
from .checkpoint import (
    Checkpoint,
    check_checkpoint_dest,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from .data import Batch, RandomBatches, load_text, split_tokens
from .device import has_native_bf16, pick_device
from .generation import sample_text as sample
from .model import lm_loss  # the one loss; the learner writes it in part 6
from .tokenizer.named import Tokenizer, get_tokenizer

__all__ = [
    "Callback",
    "History",
    "LivePlot",
    "PrintSamples",
    "RandomBatches",
    "TrainConfig",
    "TrainState",
    "Tokenizer",
    "configure_optimizer",
    "evaluate",
    "get_tokenizer",
    "lm_loss",
    "load_text",
    "lr_schedule",
    "plot_history",
    "sample",
    "split_tokens",
    "train",
    "train_step",
]

# The pieces a learner writes in notebook 06


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
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """One optimizer step over ``micro_batches`` (gradient accumulation); returns the mean loss.

    ``model(x)`` gives the logits; ``loss_fn(logits, y)`` (``lm_loss`` unless given) the loss.
    """
    loss_fn = loss_fn or lm_loss
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
                loss = loss_fn(model(x), y)
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
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Mean loss over the first ``max_batches`` batches of ``val_batches`` (model in eval mode)."""
    loss_fn = loss_fn or lm_loss
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for i, (x, y) in enumerate(val_batches):
        if i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        with _autocast(device, autocast_dtype):
            loss = loss_fn(model(x), y)
        losses.append(loss.float().item())
    model.train(was_training)
    if not losses:
        raise ValueError("the validation loader gave no batches; give it at least one")
    return sum(losses) / len(losses)


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

    def lr_at(self, step: int, schedule: Callable[..., float] | None = None) -> float:
        """The learning rate at ``step`` under this config's settings (``schedule``: yours)."""
        return (schedule or lr_schedule)(
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
        check_field_types(self)
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


def check_field_types(obj: Any) -> None:
    """Raise ``ValueError`` naming the first field of a dataclass whose value has the wrong
    type (a JSON config's ``"max_steps": "10"``), before any arithmetic trips on it."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        allowed = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        ok = any(
            (value is None and t is type(None))
            or (t is bool and isinstance(value, bool))
            or (t is int and isinstance(value, int) and not isinstance(value, bool))
            or (t is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (t is str and isinstance(value, str))
            or t not in (bool, int, float, str, type(None))  # other types: not checked here
            for t in allowed
        )
        if not ok:
            want = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ValueError(
                f"{type(obj).__name__}.{f.name} must be {want}, got {value!r} "
                f"({type(value).__name__}); write it without quotes if it is a number"
            )


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
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    step_fn: Callable[..., float] | None = None,
    lr_fn: Callable[..., float] | None = None,
) -> History:
    """Train ``model`` for ``config.max_steps`` optimizer steps and return the loss history.

    ``train_loader`` yields ``(x, y)`` token batches (a ``RandomBatches`` resumes exactly;
    other loaders are replayed from the start). ``resume`` is a checkpoint (or its folder)
    to carry on from: weights, AdamW state, step, data position and history. ``extra`` is
    stored in every checkpoint (e.g. the tokenizer's name). Under ``torchrun`` with an
    initialised process group the model is wrapped in DistributedDataParallel.

    ``loss_fn``, ``step_fn`` and ``lr_fn`` are yours from part 6 (``lm_loss``, ``train_step``,
    ``lr_schedule``), used in place of the package's. ``model(x)`` must give the logits.
    """
    from tqdm import tqdm

    config.validate()
    rank, local_rank, world = _distributed()
    is_main = rank == 0
    if config.checkpoint_dir and is_main:
        check_checkpoint_dest(config.checkpoint_dir)  # before the first step, not after the last
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
    if step_fn is not None and needs_scaler:
        # fp16 needs a GradScaler, which the notebook's train_step does not take: fp32 is
        # slower but right, where unscaled fp16 gradients would underflow to zero.
        print("your train_step takes no GradScaler: training in fp32 on this GPU", file=sys.stderr)
        autocast_dtype, needs_scaler = None, False
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
            lr = config.lr_at(step, lr_fn)
            micro = []
            for _ in range(config.grad_accum_steps):
                x, y = next(batches)
                micro.append((x.to(device, non_blocking=True), y.to(device, non_blocking=True)))
            if first:  # a bad batch fails here with a clear message, not deep in an embedding
                _check_batch(micro[0], raw_model)
                first = False
            if step_fn is None:
                loss = train_step(
                    model,
                    optimizer,
                    micro,
                    lr,
                    config.grad_clip,
                    autocast_dtype=autocast_dtype,
                    scaler=scaler,
                    loss_fn=loss_fn,
                )
            else:  # yours: (model, optimizer, micro_batches, lr, grad_clip), no GradScaler
                with _autocast(device, autocast_dtype):
                    loss = float(step_fn(model, optimizer, micro, lr, config.grad_clip))
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
                    raw_model,
                    val_loader,
                    config.eval_batches,
                    autocast_dtype=autocast_dtype,
                    loss_fn=loss_fn,
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
