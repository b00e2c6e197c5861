"""The checks of notebook 06: the loss, the learning-rate schedule, one training step."""

import math

import pytest
import torch
import torch.nn.functional as F

from gpt2course import checks
from gpt2course.model import lm_loss

from .conftest import assert_right, assert_stub, assert_wrong

# --- lm_loss ----------------------------------------------------------------------------------


def loss(logits, targets, bug=None):
    V = logits.size(-1)
    flat, t = logits.reshape(-1, V), targets.reshape(-1)
    if bug == "sum":
        return F.cross_entropy(flat, t, reduction="sum")
    if bug == "none":
        return F.cross_entropy(flat, t, reduction="none")
    if bug == "softmax":
        return F.cross_entropy(flat.softmax(-1), t)
    if bug == "shift":
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1))
    if bug == "nll_raw":
        return F.nll_loss(flat, t)
    if bug == "probs":
        return F.nll_loss(flat.softmax(-1), t)
    if bug == "item":
        return F.cross_entropy(flat, t).item()
    if bug == "detach":
        return F.cross_entropy(flat, t).detach()
    if bug == "view":
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))
    if bug == "unflattened":
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(flat, t)


LOSS_WRONG = [
    ("sum", "the sum over positions"),
    ("none", "one loss per position"),
    ("softmax", "softmax before cross_entropy"),
    ("shift", "shifted a second time"),
    ("nll_raw", "nll_loss on raw logits"),
    ("probs", "probabilities instead of log-probabilities"),
    ("item", "a Python number has no graph"),
    ("detach", "cut off from the graph"),
    ("view", "not contiguous"),
    ("unflattened", "flatten them to (B*T, V)"),
]


@pytest.mark.parametrize("bug, expect", LOSS_WRONG, ids=[b for b, _ in LOSS_WRONG])
def test_lm_loss_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_lm_loss, lambda lo, t: loss(lo, t, bug), expect)


def loss_by_hand(logits, targets):
    logp = logits.log_softmax(-1)
    return -logp.gather(-1, targets.unsqueeze(-1)).mean()


# --- lr_schedule ------------------------------------------------------------------------------


def schedule(step, max_lr, min_lr, warmup_steps, max_steps, bug=None):
    if step < warmup_steps and bug != "no_warmup":
        return max_lr * (step if bug == "from_zero" else step + 1) / warmup_steps
    if step >= max_steps and bug != "no_clamp":
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    if bug == "no_warmup":
        progress = max(progress, 0.0)
        if step < warmup_steps:
            return max_lr
    if bug == "linear":
        return min_lr + (1 - progress) * (max_lr - min_lr)
    coeff = 0.5 * (1 + math.cos(math.pi * progress))
    if bug == "to_zero":
        return coeff * max_lr
    return min_lr + coeff * (max_lr - min_lr)


def schedule_torch_cos(step, max_lr, min_lr, warmup_steps, max_steps):
    """Right: the cosine in float32 torch."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    p = torch.tensor((step - warmup_steps) / (max_steps - warmup_steps))
    return (min_lr + 0.5 * (1 + torch.cos(math.pi * p)) * (max_lr - min_lr)).item()


def schedule_tensor(step, max_lr, min_lr, warmup_steps, max_steps):
    return torch.tensor(schedule(step, max_lr, min_lr, warmup_steps, max_steps))


SCHEDULE_WRONG = [
    ("from_zero", "the warmup starts at lr = 0"),
    ("no_clamp", "stay at min_lr"),
    ("linear", "decays in a straight line"),
    ("to_zero", "decays to 0 instead of min_lr"),
    ("no_warmup", "there is no warmup"),
]


@pytest.mark.parametrize("bug, expect", SCHEDULE_WRONG, ids=[b for b, _ in SCHEDULE_WRONG])
def test_lr_schedule_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_lr_schedule, lambda s, **kw: schedule(s, **kw, bug=bug), expect)


def test_lr_schedule_tensor_is_named():
    assert_wrong(checks.check_lr_schedule, schedule_tensor, "return a Python float")


# --- train_step -------------------------------------------------------------------------------


def step(model, optimizer, micro_batches, lr, grad_clip=1.0, bug=None):
    groups = {"no_lr": [], "first_group": optimizer.param_groups[:1]}.get(
        bug, optimizer.param_groups
    )
    for group in groups:
        group["lr"] = lr
    if bug != "no_zero_grad":
        optimizer.zero_grad()
    losses = []
    n = len(micro_batches)
    for x, y in micro_batches:
        if bug == "zero_grad_in_loop":
            optimizer.zero_grad()
        loss_ = lm_loss(model(x), y)
        (loss_ if bug == "no_divide" else loss_ / n).backward()
        losses.append(loss_)
        if bug == "step_each":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad()
    if bug not in ("no_clip", "step_each"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if bug == "zero_grad_before_step":
        optimizer.zero_grad()
    if bug != "step_each":
        optimizer.step()
    if bug == "tensor":
        return sum(losses) / n
    if bug == "last":
        return losses[-1].item()
    return sum(x.item() for x in losses) / n


STEP_WRONG = [
    ("no_zero_grad", "the old gradients were not cleared"),
    ("zero_grad_in_loop", "cleared inside the loop"),
    ("zero_grad_before_step", "cleared after the backward passes"),
    ("step_each", "steps after every micro-batch"),
    ("no_divide", "divided by the number of micro-batches"),
    ("no_lr", "the learning rate was not applied"),
    ("first_group", "only the first parameter group"),
    ("no_clip", "were not clipped"),
    ("tensor", "as a Python float"),
    ("last", "not the last one"),
]


@pytest.mark.parametrize("bug, expect", STEP_WRONG, ids=[b for b, _ in STEP_WRONG])
def test_train_step_wrong_solutions_are_named(bug, expect):
    assert_wrong(
        checks.check_train_step,
        lambda m, o, mb, lr, grad_clip=1.0: step(m, o, mb, lr, grad_clip, bug),
        expect,
    )


def step_summed_loss(model, optimizer, micro_batches, lr, grad_clip=1.0):
    """Right, another way: one backward of the summed, averaged losses."""
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total = sum(lm_loss(model(x), y) for x, y in micro_batches) / len(micro_batches)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
    optimizer.step()
    return total.item()


RIGHT = [
    (checks.check_lm_loss, loss),
    (checks.check_lm_loss, loss_by_hand),
    (checks.check_lm_loss, lambda lo, t: F.cross_entropy(lo.transpose(1, 2), t)),
    (checks.check_lr_schedule, lambda s, **kw: schedule(s, **kw)),
    (checks.check_lr_schedule, schedule_torch_cos),
    (checks.check_train_step, step),
    (checks.check_train_step, step_summed_loss),
]


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize(
    "check", [checks.check_lm_loss, checks.check_lr_schedule, checks.check_train_step]
)
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
