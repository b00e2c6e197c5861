"""Pretraining a GPT: the loss, AdamW, warmup + cosine, clipping, accumulation, evaluation,
checkpoints, and data-parallel training under ``torchrun``. First the pieces notebook 06 has
the learner write, then the loop that runs them with its set-up and bookkeeping in small
helpers. In a notebook::

    history = train(model, train_batches, val_batches, TrainConfig(max_steps=500),
                    callbacks=[LivePlot(), PrintSamples(tokenizer)])
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .callbacks import Callback, History, TrainState
from .checkpoint import (
    Checkpoint,
    check_checkpoint_dest,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from .data import Batch, batches_from, check_batch
from .device import distributed, has_native_bf16, pick_device, progress_bars
from .model import lm_loss  # the one loss; the learner writes it in part 6

__all__ = ["TrainConfig", "configure_optimizer", "evaluate", "lr_schedule", "train", "train_step"]

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


# The run's settings


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
    progress: bool = True  # tqdm bar (never with GPT2COURSE_PROGRESS=0, device.progress_bars)

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
        self._check_types()
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

    def _check_types(self) -> None:
        # A JSON config's "max_steps": "10" fails here, by name, not later in some arithmetic.
        for f in fields(self):
            value, allowed = getattr(self, f.name), f.type.split(" | ")  # e.g. "float | None"
            kind = "None" if value is None else type(value).__name__  # a bool is no int here
            if kind not in allowed and not (kind == "int" and "float" in allowed):
                want = " or ".join("null" if t == "None" else t for t in allowed)
                raise ValueError(
                    f"TrainConfig.{f.name} must be {want}, got {value!r} "
                    f"({type(value).__name__}); write it without quotes if it is a number"
                )


# The loop's set-up and bookkeeping


def _device(prefer: str | None, local_rank: int, world: int) -> torch.device:
    """The device to train on; under torchrun each process takes its own GPU."""
    device = pick_device(prefer)
    if device.type == "cuda":
        if world > 1:
            device = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _precision(
    device: torch.device, precision: str, own_step: bool
) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """(autocast dtype, or None for fp32; GradScaler, or None) for ``precision`` on ``device``."""
    if precision == "auto":
        precision = (
            "fp32" if device.type != "cuda" else "bf16" if has_native_bf16(device) else "fp16"
        )
    if precision == "fp16" and device.type == "cuda":  # fp16 gradients underflow unscaled
        if own_step:
            # The notebook's train_step takes no GradScaler: fp32 is slower but right.
            print(
                "your train_step takes no GradScaler: training in fp32 on this GPU", file=sys.stderr
            )
            return None, None
        return torch.float16, torch.amp.GradScaler("cuda")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision], None


def _resume(resume, model, optimizer, scaler, world: int) -> tuple[int, int, History]:
    """Load a checkpoint (or its folder): weights, AdamW state, RNG; its (step, position, history)."""
    ck = load_checkpoint(resume) if isinstance(resume, (str, Path)) else resume
    if ck.optimizer_state is None:
        raise ValueError(
            f"the checkpoint {ck.path} has no optimizer state, so training cannot resume "
            "exactly; load its model and start a new run instead"
        )
    model.load_state_dict(ck.model.state_dict())
    optimizer.load_state_dict(ck.optimizer_state)
    if scaler is not None and ck.scaler_state:
        scaler.load_state_dict(ck.scaler_state)
    if world == 1:  # one process's generators; data-parallel ranks keep their own seeds
        restore_rng(ck.rng_state)
    return ck.step, ck.data_position, History.from_dict(ck.history or {})


def _mean_over_ranks(loss: float, device: torch.device, world: int) -> float:
    """This step's loss averaged over the data-parallel processes."""
    if world == 1:
        return loss
    t = torch.tensor([loss], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / world


class _Progress:
    """Per-step bookkeeping: the history's steps, clock and token count, the tqdm bar (rank 0
    only), and the ``max_seconds`` budget. A resumed run carries on its clock and count."""

    def __init__(self, config: TrainConfig, history: History, step: int, is_main: bool):
        self.config, self.history, self.is_main = config, history, is_main
        self.started = time.perf_counter()
        self.t0 = self.started - (history.seconds[-1] if history.seconds else 0.0)
        self.tokens = history.tokens[-1] if history.tokens else 0
        show = config.progress and is_main and progress_bars()
        self.bar = tqdm(
            total=config.max_steps,
            initial=step,
            disable=not show,
            desc="training",
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def out_of_time(self, step: int) -> bool:
        """Whether ``max_seconds`` has run out (the schedule is unchanged)."""
        limit = self.config.max_seconds
        if limit is None or time.perf_counter() - self.started <= limit:
            return False
        if self.is_main:
            print(f"stopping at step {step}: max_seconds={limit} reached", file=sys.stderr)
        return True

    def log(self, step: int, loss: float, lr: float, tokens: int) -> None:
        """Add step ``step`` (``tokens`` more tokens, all processes) to the history and the bar."""
        h, self.tokens = self.history, self.tokens + tokens
        h.step.append(step)
        h.train_loss.append(loss)
        h.lr.append(lr)
        h.tokens.append(self.tokens)
        h.seconds.append(time.perf_counter() - self.t0)
        postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}"}
        if h.val_loss:
            postfix["val"] = f"{h.val_loss[-1]:.3f}"
        self.bar.update(1)
        self.bar.set_postfix(postfix, refresh=False)


def _save(state: TrainState, position: int, scaler, extra: dict | None) -> None:
    """The run so far, to ``checkpoint_dir``: weights, AdamW state, data position, history."""
    save_checkpoint(
        state.config.checkpoint_dir,
        state.model,
        optimizer=state.optimizer,
        step=state.step,
        data_position=position,
        history=state.history.to_dict(),
        train_config=state.config.to_dict(),
        scaler_state=scaler.state_dict() if scaler is not None else None,
        extra=extra,
    )


# The training loop


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
    config.validate()
    rank, local_rank, world = distributed()
    is_main = rank == 0
    if config.checkpoint_dir and is_main:
        check_checkpoint_dest(config.checkpoint_dir)  # before the first step, not after the last
    device = _device(config.device, local_rank, world)
    torch.manual_seed(config.seed + rank)  # dropout masks differ per rank, as they should
    raw_model = model.to(device).train()
    betas = (config.beta1, config.beta2)
    optimizer = configure_optimizer(
        raw_model, config.learning_rate, config.weight_decay, betas, config.eps
    )
    dtype, scaler = _precision(device, config.precision, own_step=step_fn is not None)
    loss_kw = dict(autocast_dtype=dtype, loss_fn=loss_fn)  # for train_step and evaluate
    step, position, history = 0, 0, History()
    if resume is not None:
        step, position, history = _resume(resume, raw_model, optimizer, scaler, world)
    if config.compile:
        model = torch.compile(model)
    if world > 1:
        model = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    saving = bool(config.checkpoint_dir) and is_main
    state = TrainState(step, raw_model, optimizer, config, history, is_main)
    batches, first_step = batches_from(train_loader, position), step
    progress = _Progress(config, history, step, is_main)
    try:
        for cb in callbacks:
            cb.on_train_start(state)
        while step < config.max_steps and not progress.out_of_time(step):
            lr = config.lr_at(step, lr_fn)
            micro = [next(batches) for _ in range(config.grad_accum_steps)]
            micro = [
                (x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in micro
            ]
            if step == first_step:  # a bad batch fails here, clearly, not deep in an embedding
                check_batch(micro[0], raw_model)
            if step_fn is None:
                loss = train_step(
                    model, optimizer, micro, lr, config.grad_clip, scaler=scaler, **loss_kw
                )
            else:  # yours: (model, optimizer, micro_batches, lr, grad_clip), no GradScaler
                with _autocast(device, dtype):
                    loss = float(step_fn(model, optimizer, micro, lr, config.grad_clip))
            loss = _mean_over_ranks(loss, device, world)
            step, position = step + 1, position + config.grad_accum_steps
            state.step = step
            progress.log(step, loss, lr, tokens=sum(x.numel() for x, _ in micro) * world)
            for cb in callbacks:
                cb.on_step(state)
            if val_loader is not None and (
                step % config.eval_interval == 0 or step == config.max_steps
            ):
                val = evaluate(raw_model, val_loader, config.eval_batches, **loss_kw)
                history.val_step.append(step)
                history.val_loss.append(val)
                for cb in callbacks:
                    cb.on_eval(state)
            if saving and config.checkpoint_interval and step % config.checkpoint_interval == 0:
                _save(state, position, scaler, extra)
    finally:
        progress.bar.close()  # also when a callback or Ctrl-C stops the run
    if saving and not (config.checkpoint_interval and step % config.checkpoint_interval == 0):
        _save(state, position, scaler, extra)
    for cb in callbacks:
        cb.on_train_end(state)
    return history
