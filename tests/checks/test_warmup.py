"""check_softmax: typical wrong solutions are named, other right ones pass."""

import pytest
import torch
import torch.nn.functional as F

from gpt2course.checks import check_softmax

from .conftest import assert_right, assert_stub, assert_wrong


def no_max(x):
    e = torch.exp(x)
    return e / e.sum(dim=-1, keepdim=True)


def dim0(x):
    e = torch.exp(x - x.amax(dim=0, keepdim=True))
    return e / e.sum(dim=0, keepdim=True)


def dim1_2d_only(x):  # right on the notebook's 2-D example, wrong on a batch
    e = torch.exp(x - x.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def global_max(x):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=-1, keepdim=True)


def in_place(x):
    x -= x.amax(dim=-1, keepdim=True)
    x.exp_()
    return x / x.sum(dim=-1, keepdim=True)


def log_softmax(x):
    return x - x.logsumexp(-1, keepdim=True)


def not_normalised(x):
    return torch.exp(x - x.amax(-1, keepdim=True)) * torch.exp(x.amax(-1, keepdim=True))


def no_keepdim(x):
    e = torch.exp(x - x.amax(dim=-1))
    return e / e.sum(dim=-1)


WRONG = [
    (no_max, "subtract each row's max"),
    (dim0, "wrong dimension"),
    (dim1_2d_only, "wrong dimension"),
    (global_max, "not the max of the whole tensor"),
    (in_place, "changed its input `x` in place"),
    (log_softmax, "log-softmax"),
    (not_normalised, "not normalised"),
    (no_keepdim, "keepdim=True"),
]


@pytest.mark.parametrize("wrong, hint", WRONG, ids=[w.__name__ for w, _ in WRONG])
def test_wrong_solutions_are_named(wrong, hint):
    assert_wrong(check_softmax, wrong, hint)


def test_hint_two_gives_a_bigger_step():
    assert_wrong(check_softmax, dim0, "use dim=-1 for both", hint=2)


@pytest.mark.parametrize(
    "right",
    [
        lambda x: F.softmax(x, dim=-1),
        lambda x: (x - x.logsumexp(-1, keepdim=True)).exp(),
        lambda x: (lambda e: e / e.sum(-1, keepdim=True))((x - x.max(-1, True).values).exp()),
    ],
)
def test_other_right_solutions_pass(right):
    assert_right(check_softmax, right)


def test_stub_is_not_done_yet():
    def softmax(x):
        raise NotImplementedError

    assert_stub(check_softmax, softmax)
