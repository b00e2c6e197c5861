"""The checks of notebook 09: the masked collate and the DPO loss."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from gpt2course import checks, instruct
from gpt2course.checks.chat import _collate_variant

from .conftest import assert_right, assert_stub, assert_wrong


def collate_in_place(batch, pad_id=0):
    for prompt, response in batch:
        prompt.extend(response)  # the caller's prompt now holds the answer too
    return instruct.collate([(p[: len(p) - len(r)], r) for p, r in batch], pad_id)


COLLATE_WRONG = [
    (lambda b, pad_id=0: _collate_variant(b, pad_id, shift=0), "x keeps the last token"),
    (lambda b, pad_id=0: _collate_variant(b, pad_id, mask_prompt=False), "the prompt is not masked"),
    (lambda b, pad_id=0: _collate_variant(b, pad_id, mask_pad=False), "padding's labels should be -100"),
    (lambda b, pad_id=0: _collate_variant(b, pad_id, extra=1), "one label too many is masked"),
    (lambda b, pad_id=0: _collate_variant(b, pad_id, label_pad=0), "masked labels are 0"),
    (lambda b, pad_id=0: _collate_variant(b, pad_id, left=True), "pad on the right"),
    (lambda b, pad_id=0: _collate_variant(b, 0), "pad with the pad_id given"),
    (lambda b, pad_id=0: tuple(t.float() for t in instruct.collate(b, pad_id)), "must be integers"),
    (collate_in_place, "changed its input `batch` in place"),
]  # fmt: skip


@pytest.mark.parametrize("wrong, expect", COLLATE_WRONG, ids=[e for _, e in COLLATE_WRONG])
def test_collate_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_collate, wrong, expect)


def collate_by_pad_sequence(batch, pad_id=0):
    """Right, another way: torch's pad_sequence, and the mask from the prompt lengths."""
    xs = [torch.tensor(p + r)[:-1] for p, r in batch]
    ys = [torch.tensor([-100] * (len(p) - 1) + r) for p, r in batch]
    return (
        pad_sequence(xs, batch_first=True, padding_value=pad_id),
        pad_sequence(ys, batch_first=True, padding_value=-100),
    )


def dpo(pc, pr, rc, rr, beta=0.1, bug=None):
    m = (pc - rc) - (pr - rr)
    if bug == "reversed":
        m = -m
    if bug == "no_ref":
        m = pc - pr
    z = m if bug == "no_beta" else beta * m
    loss = {
        "sum": lambda: -F.logsigmoid(z).sum(),
        "no_log": lambda: -torch.sigmoid(z).mean(),
        "no_minus": lambda: F.logsigmoid(z).mean(),
    }.get(bug, lambda: -F.logsigmoid(z).mean())()
    if bug == "only_loss":
        return loss
    if bug == "item":
        return loss.item(), m.detach()
    return loss, m.detach()


DPO_WRONG = [
    ("reversed", "the margin is reversed"),
    ("no_ref", "the reference model's log-probabilities are missing"),
    ("no_beta", "beta is not applied"),
    ("sum", "average it over the pairs"),
    ("no_log", "the log is missing"),
    ("no_minus", "the minus sign is missing"),
    ("only_loss", "return (loss, margin)"),
    ("item", "a Python number has no graph"),
]


@pytest.mark.parametrize("bug, expect", DPO_WRONG, ids=[b for b, _ in DPO_WRONG])
def test_dpo_loss_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_dpo_loss, lambda *a, beta=0.1: dpo(*a, beta=beta, bug=bug), expect)


def dpo_softplus(pc, pr, rc, rr, beta=0.1):
    """Right, another way: -log sigmoid(z) = softplus(-z), and the log-ratios first."""
    chosen, rejected = pc - rc, pr - rr
    return F.softplus(-beta * (chosen - rejected)).mean(), chosen - rejected


def dpo_log_sigmoid(pc, pr, rc, rr, beta=0.1):
    """Right for the margins training meets: torch.log of torch.sigmoid."""
    m = (pc - rc) - (pr - rr)
    return -torch.log(torch.sigmoid(beta * m)).mean(), m


def test_dpo_reference_matches_the_papers_formula():
    # Rafailov et al. 2023, eq. 7: -log sigma(beta log(pi_c/ref_c) - beta log(pi_r/ref_r))
    from gpt2course.preference import dpo_loss

    pc, pr, rc, rr = (
        torch.tensor([-3.0]),
        torch.tensor([-5.0]),
        torch.tensor([-4.0]),
        torch.tensor([-4.5]),
    )
    z = 0.1 * ((-3.0 + 4.0) - (-5.0 + 4.5))
    want = -torch.log(torch.sigmoid(torch.tensor(z)))
    assert torch.allclose(dpo_loss(pc, pr, rc, rr, beta=0.1)[0], want)


RIGHT = [
    (checks.check_collate, lambda b, pad_id=0: instruct.collate(b, pad_id)),
    (checks.check_collate, collate_by_pad_sequence),
    (checks.check_dpo_loss, lambda *a, beta=0.1: dpo(*a, beta=beta)),
    (checks.check_dpo_loss, dpo_softplus),
    (checks.check_dpo_loss, dpo_log_sigmoid),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize("check", [checks.check_collate, checks.check_dpo_loss])
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
