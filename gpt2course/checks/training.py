"""Checks for the pretraining exercises: the loss, the learning-rate schedule, one training step."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .. import train as reference
from ..model import GPT, GPTConfig
from ..model import lm_loss as reference_loss
from ._core import CheckFailure, call, check, compare_tensors, require_tensor

__all__ = ["check_lm_loss", "check_lr_schedule", "check_train_step"]


@check(
    "lm_loss",
    reference_loss,
    crash_meanings=[
        (
            r"view size is not compatible",
            "a .view() on logits that are not contiguous (the next cells pass slices): "
            "flatten with .reshape() or .flatten(0, 1)",
        )
    ],
)
def check_lm_loss(f):
    """Check ``lm_loss(logits, targets)`` against cross-entropy written out by torch."""
    g = torch.Generator().manual_seed(0)
    B, T, V = 2, 5, 11
    # A slice of a longer tensor, as the next cells give it: not contiguous, and attached
    # to a graph, so that the loss must be a tensor that can backward().
    base = (torch.randn(B, T + 1, V, generator=g) * 2).requires_grad_()
    logits = base[:, 1:]  # (B, T, V), not contiguous
    targets = torch.randint(V, (B, T), generator=g)  # (B, T)
    flat, flat_t = logits.reshape(-1, V), targets.reshape(-1)
    try:
        got = call(f, logits, targets, names=["logits", "targets"])
    except RuntimeError as e:
        if "target" in str(e) and "size" in str(e):
            raise CheckFailure(
                "F.cross_entropy was given (B, T, V) logits and read dim 1 as the classes; "
                "flatten them to (B*T, V) and the targets to (B*T,) first"
            ) from e
        raise
    require_tensor(got, "loss", grad=True)
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


def _schedule_variant(step, *, max_lr, min_lr, warmup_steps, max_steps, bug):
    """The reference schedule with one typical mistake put in."""
    if bug == "no_warmup" and step < warmup_steps:
        return max_lr
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
    if bug == "linear":
        coeff = 1.0 - progress
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
    (
        "linear",
        "the rate decays in a straight line; the schedule is a half cosine: slow at first, "
        "fastest in the middle, slow again near min_lr",
    ),
    ("no_warmup", "there is no warmup: the rate should climb to max_lr over warmup_steps"),
]


@check("lr_schedule", reference.lr_schedule)
def check_lr_schedule(f):
    """Check ``lr_schedule(step, max_lr=, min_lr=, warmup_steps=, max_steps=)`` over a whole run."""
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=50)
    steps = range(0, 70)
    values = [call(f, s, **kw) for s in steps]
    bad = next((v for v in values if not isinstance(v, int | float)), None)
    if bad is not None:
        raise CheckFailure(
            f"lr_schedule returned a {type(bad).__name__}; return a Python float "
            "(.item() on a tensor): the optimizer's lr is a plain number"
        )
    got = torch.tensor(values, dtype=torch.float64)
    expected = torch.tensor([reference.lr_schedule(s, **kw) for s in steps], dtype=torch.float64)
    bugs = [
        (
            hint,
            torch.tensor([_schedule_variant(s, **kw, bug=b) for s in steps], dtype=torch.float64),
        )
        for b, hint in _SCHEDULE_BUGS
    ]
    compare_tensors(
        got,
        expected,
        what="learning rates of steps 0..69 (warmup 10, max 50)",
        # float32 math (torch.cos) is right too: 1e-6 is far below any bug's error
        atol=1e-6,
        rtol=1e-5,
        likely_bugs=bugs,
    )


_OLD_LR = 0.01  # the optimizer's rate before the step; the step must set its own


def _tiny_setup(seed: int):
    """A tiny GPT, an SGD optimizer with two groups, stale gradients, two micro-batches."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=32, context_length=8, n_embd=16, n_layer=1, n_head=2))
    # Plain SGD: every mistake with the gradients shows in the new weights (Adam's first
    # step would hide a wrong scale). Two groups, like the notebook's optimizer (decay and
    # no decay), so that setting the rate of the first group only shows.
    params = list(model.parameters())
    opt = torch.optim.SGD(
        [{"params": [p for p in params if p.dim() >= 2]}, {"params": [p for p in params if p.dim() < 2]}],
        lr=_OLD_LR,
    )  # fmt: skip
    for p in params:
        p.grad = torch.full_like(p, 0.5)  # left over from an earlier step
    g = torch.Generator().manual_seed(seed)
    micro = [
        (torch.randint(32, (2, 8), generator=g), torch.randint(32, (2, 8), generator=g))
        for _ in range(3)
    ]
    return model, opt, micro


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@functools.lru_cache(maxsize=64)  # the same few variants are replayed by every check
def _step_variant(seed, lr, clip, bug=None):
    """(new weights, returned loss) of a training step with one typical mistake put in."""
    model, opt, micro = _tiny_setup(seed)
    groups = {"no_lr": [], "first_group": opt.param_groups[:1]}.get(bug, opt.param_groups)
    for group in groups:
        group["lr"] = lr
    if bug != "no_zero_grad":
        opt.zero_grad()
    losses = []
    for x, y in micro:
        if bug == "zero_grad_in_loop":
            opt.zero_grad()
        loss = reference_loss(model(x), y)
        (loss if bug == "no_divide" else loss / len(micro)).backward()
        losses.append(loss.item())
        if bug == "clip_each":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if bug == "step_each":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            opt.zero_grad()
    if bug not in ("no_clip", "clip_each", "step_each"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0 if bug == "clip_fixed" else clip)
    if bug == "zero_grad_before_step":
        opt.zero_grad()
    if bug != "step_each":
        opt.step()
    ret = {"last_loss": losses[-1], "sum_loss": sum(losses)}.get(bug, sum(losses) / len(losses))
    return _flat_params(model), torch.tensor(ret, dtype=torch.float64)


_STEP_BUGS = [
    (
        "no_zero_grad",
        "the old gradients were not cleared: backward() adds into .grad, so clear it "
        "once before the micro-batches",
    ),
    (
        "zero_grad_in_loop",
        "the gradients are cleared inside the loop, so only the last micro-batch counts; "
        "clear them once, before the first backward()",
    ),
    (
        "zero_grad_before_step",
        "the gradients are cleared after the backward passes, before the update: the step "
        "then has nothing to apply; clear them at the start",
    ),
    (
        "step_each",
        "the optimizer steps after every micro-batch; accumulation means one step after all "
        "of them",
    ),
    (
        "no_divide",
        "each micro-batch's loss must be divided by the number of micro-batches, "
        "so that the accumulated gradient is their mean, not their sum",
    ),
    (
        "no_lr",
        "the learning rate was not applied: the optimizer still used its old rate; set it "
        "in every parameter group before the step",
    ),
    (
        "first_group",
        "only the first parameter group got the new learning rate; the optimizer has "
        "several groups (with and without weight decay): set it in every one",
    ),
    (
        "no_clip",
        "the gradients were not clipped before the update: clip their norm to grad_clip "
        "after the backward passes and before the step",
    ),
    (
        "clip_each",
        "the gradients are clipped after each micro-batch; clip once, when all are "
        "accumulated, just before the step",
    ),
    ("clip_fixed", "the grad_clip argument is ignored (a fixed 1.0 is used)"),
]


@check("train_step", reference.train_step)
def check_train_step(f):
    """Check ``train_step(model, optimizer, micro_batches, lr, grad_clip)`` on a tiny GPT."""
    lr = 0.5
    # A huge clip leaves the gradient alone; a small one must rescale it.
    for clip in (1e6, 0.05):
        model, opt, micro = _tiny_setup(seed=1)
        got_loss = call(
            f, model, opt, micro, lr, clip, names=["model", "optimizer", "micro_batches"]
        )
        want_params, want_loss = _step_variant(1, lr, clip)
        bugs = [(h, _step_variant(1, lr, clip, b)[0]) for b, h in _STEP_BUGS]
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
        if not isinstance(got_loss, float | int):
            raise CheckFailure(
                f"train_step returned a {type(got_loss).__name__}; return the mean loss as "
                "a Python float (.item()): a tensor would keep every step's graph alive"
            )
        compare_tensors(
            torch.tensor(float(got_loss), dtype=torch.float64),
            want_loss,
            what="returned loss",
            likely_bugs=loss_bugs,
        )
