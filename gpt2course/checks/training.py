"""Checks for the pretraining exercises: the loss, the learning-rate schedule, one training step."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import train as reference
from ._core import CheckFailure, compare_tensors, run_check

__all__ = ["check_lm_loss", "check_lr_schedule", "check_train_step"]


def check_lm_loss(lm_loss, hint: int = 1):
    """Check ``lm_loss(logits, targets)`` against cross-entropy written out by torch."""

    def test(f):
        g = torch.Generator().manual_seed(0)
        B, T, V = 2, 5, 11
        logits = torch.randn(B, T, V, generator=g) * 2  # (B, T, V)
        targets = torch.randint(V, (B, T), generator=g)  # (B, T)
        flat, flat_t = logits.reshape(-1, V), targets.reshape(-1)
        try:
            got = f(logits.clone(), targets.clone())
        except RuntimeError as e:
            if "target" in str(e) and "size" in str(e):
                raise CheckFailure(
                    "F.cross_entropy was given (B, T, V) logits and read dim 1 as the classes; "
                    "flatten them to (B*T, V) and the targets to (B*T,) first"
                ) from e
            raise
        got = torch.as_tensor(got)
        expected = F.cross_entropy(flat, flat_t)
        bugs = [
            (
                "the sum over positions instead of the mean (use the default reduction='mean')",
                F.cross_entropy(flat, flat_t, reduction="sum"),
            ),
            (
                "one loss per position: the training loss is their mean, a single number",
                F.cross_entropy(flat, flat_t, reduction="none"),
            ),
            (
                "softmax before cross_entropy: it takes raw logits and applies log-softmax itself",
                F.cross_entropy(flat.softmax(-1), flat_t),
            ),
            (
                "the targets are shifted a second time: y is already x shifted by one, "
                "so logits[:, t] is scored against targets[:, t]",
                F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1)),
            ),
            (
                "nll_loss on raw logits: it expects log-probabilities (use log_softmax first)",
                F.nll_loss(flat, flat_t),
            ),
            (
                "probabilities instead of log-probabilities: the loss is -log p(target)",
                F.nll_loss(flat.softmax(-1), flat_t),
            ),
        ]
        compare_tensors(got, expected, what="loss", likely_bugs=bugs)

    return run_check("lm_loss", lm_loss, reference.lm_loss, test, hint=hint)


def _schedule_variant(step, *, max_lr, min_lr, warmup_steps, max_steps, bug):
    """The reference schedule with one typical mistake put in."""
    if step < warmup_steps or (bug == "warmup_le" and step <= warmup_steps):
        return max_lr * (step if bug == "warmup_from_zero" else step + 1) / warmup_steps
    if step >= max_steps and bug != "no_clamp":
        return min_lr
    if bug == "span_max_steps":
        progress = (step - warmup_steps) / max_steps
    elif bug == "progress_from_zero":
        progress = step / max_steps
    else:
        progress = (step - warmup_steps) / (max_steps - warmup_steps)
    coeff = (1 if bug == "no_half" else 0.5) * (1.0 + math.cos(math.pi * progress))
    if bug == "to_zero":
        return coeff * max_lr
    if bug == "no_subtract":
        return min_lr + coeff * max_lr
    return min_lr + coeff * (max_lr - min_lr)


_SCHEDULE_BUGS = [
    (
        "warmup_from_zero",
        "the warmup starts at lr = 0: step 0 should already use "
        "max_lr * 1 / warmup_steps (use step + 1), or the first step is wasted",
    ),
    (
        "warmup_le",
        "the warmup runs one step too long (step <= warmup_steps): at "
        "step == warmup_steps the rate overshoots max_lr; use step < warmup_steps",
    ),
    (
        "span_max_steps",
        "off by the warmup in the cosine: it should span max_steps - warmup_steps "
        "steps, so that it reaches min_lr exactly at max_steps",
    ),
    (
        "progress_from_zero",
        "the cosine's progress must count from the end of the warmup: "
        "(step - warmup_steps) / (max_steps - warmup_steps)",
    ),
    ("to_zero", "the cosine decays to 0 instead of min_lr: min_lr + coeff * (max_lr - min_lr)"),
    ("no_subtract", "coeff should scale (max_lr - min_lr), else the rate peaks at max_lr + min_lr"),
    ("no_half", "the 0.5 is missing: coeff = 0.5 * (1 + cos(pi * progress)) goes from 1 to 0"),
    ("no_clamp", "after max_steps the rate should stay at min_lr, not follow the cosine back up"),
]


def check_lr_schedule(lr_schedule, hint: int = 1):
    """Check ``lr_schedule(step, max_lr=, min_lr=, warmup_steps=, max_steps=)`` over a whole run."""

    def test(f):
        kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=50)
        steps = range(0, 70)
        got = torch.tensor([float(f(s, **kw)) for s in steps], dtype=torch.float64)
        expected = torch.tensor(
            [reference.lr_schedule(s, **kw) for s in steps], dtype=torch.float64
        )
        bugs = [
            (
                hint,
                torch.tensor(
                    [_schedule_variant(s, **kw, bug=b) for s in steps], dtype=torch.float64
                ),
            )
            for b, hint in _SCHEDULE_BUGS
        ]
        compare_tensors(
            got,
            expected,
            what="learning rates of steps 0..69 (warmup 10, max 50)",
            atol=1e-9,
            rtol=1e-7,
            likely_bugs=bugs,
        )

    return run_check("lr_schedule", lr_schedule, reference.lr_schedule, test, hint=hint)


def _tiny_setup(seed: int):
    """A tiny GPT, an SGD optimizer at lr 0, stale gradients, and two micro-batches."""
    from ..model import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2))
    # Plain SGD: every mistake with the gradients shows in the new weights (Adam's first
    # step would hide a wrong scale), and lr=0 shows whether the step sets the rate.
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)  # left over from an earlier step
    g = torch.Generator().manual_seed(seed)
    micro = [
        (torch.randint(32, (2, 8), generator=g), torch.randint(32, (2, 8), generator=g))
        for _ in range(2)
    ]
    return model, opt, micro


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _step_variant(seed, lr, clip, bug=None):
    """(new weights, returned loss) of a training step with one typical mistake put in."""
    model, opt, micro = _tiny_setup(seed)
    if bug != "no_lr":
        for group in opt.param_groups:
            group["lr"] = lr
    if bug != "no_zero_grad":
        opt.zero_grad()
    losses = []
    for x, y in micro:
        _, loss = model(x, y)
        (loss if bug == "no_divide" else loss / len(micro)).backward()
        losses.append(loss.item())
    if bug != "no_clip":
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    ret = {"last_loss": losses[-1], "sum_loss": sum(losses)}.get(bug, sum(losses) / len(losses))
    return _flat_params(model), torch.tensor(ret)


_STEP_BUGS = [
    (
        "no_zero_grad",
        "the old gradients were not cleared: call optimizer.zero_grad() before backward()",
    ),
    (
        "no_divide",
        "each micro-batch's loss must be divided by the number of micro-batches, "
        "so that the accumulated gradient is their mean, not their sum",
    ),
    (
        "no_lr",
        "the learning rate was not applied: set group['lr'] = lr in every "
        "optimizer.param_groups before optimizer.step()",
    ),
    (
        "no_clip",
        "the gradients were not clipped before the update: call "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) after the backward "
        "passes and before optimizer.step()",
    ),
]


def check_train_step(train_step, hint: int = 1):
    """Check ``train_step(model, optimizer, micro_batches, lr, grad_clip)`` on a tiny GPT."""

    def test(f):
        lr = 0.5
        # A huge clip leaves the gradient alone; a small one must rescale it.
        for clip in (1e6, 0.05):
            model, opt, micro = _tiny_setup(seed=1)
            got_loss = f(model, opt, micro, lr, clip)
            want_params, want_loss = _step_variant(1, lr, clip)
            bugs = [(hint, _step_variant(1, lr, clip, b)[0]) for b, hint in _STEP_BUGS]
            compare_tensors(
                _flat_params(model),
                want_params,
                what=f"weights after the step (grad_clip={clip})",
                atol=1e-6,
                rtol=1e-5,
                likely_bugs=bugs,
            )
            if got_loss is None:
                raise CheckFailure(
                    "train_step returned None: return the mean loss of the micro-batches"
                )
            loss_bugs = [
                (
                    "return the mean loss over the micro-batches, not the last one",
                    _step_variant(1, lr, clip, "last_loss")[1],
                ),
                (
                    "return the mean loss over the micro-batches, not their sum",
                    _step_variant(1, lr, clip, "sum_loss")[1],
                ),
            ]
            compare_tensors(
                torch.as_tensor(float(got_loss)),
                want_loss,
                what="returned loss",
                likely_bugs=loss_bugs,
            )

    return run_check("train_step", train_step, reference.train_step, test, hint=hint)
