"""The checks of notebook 02: training windows and the embedding sum."""

import pytest
import torch

from gpt2course import checks

from .conftest import assert_right, assert_stub, assert_wrong


def windows(ids, ctx, stride, *, end=None, step=None, shift=1, dtype=torch.long, plus_one=False):
    """Windows cut by slicing, with knobs for the usual mistakes."""
    last = len(ids) - ctx - 1 if end is None else end
    starts = range(0, last + 1, step or stride)
    xs = [ids[s : s + ctx] for s in starts]
    ys = [ids[s + shift : s + shift + ctx] for s in starts]
    x, y = torch.tensor(xs, dtype=dtype), torch.tensor(ys, dtype=dtype)
    return x, (x + 1 if plus_one else y)


WINDOWS_WRONG = [
    (lambda i, c, s: windows(i, c, s, end=len(i) - c - 2), "the last window is missing"),
    (lambda i, c, s: windows(i, c, s, step=1), "ignore the stride"),
    (lambda i, c, s: windows(i, c, s, step=c), "step by context_length"),
    (lambda i, c, s: windows(i, c, s, shift=0), "the target is the input itself"),
    (lambda i, c, s: windows(i, c, s, plus_one=True), "the inputs plus one"),
    (lambda i, c, s: windows(i, c, s, dtype=torch.float32), "token ids must be integers"),
    (lambda i, c, s: windows(i, c, s, end=len(i) - c), "ran past the end of ids"),
    (
        lambda i, c, s: tuple(t.tolist() for t in windows(i, c, s)),
        "should be a tensor, got list",
    ),
    (lambda i, c, s: list(zip(*windows(i, c, s), strict=True)), "should return two tensors"),
]


@pytest.mark.parametrize("wrong, expect", WINDOWS_WRONG, ids=[e for _, e in WINDOWS_WRONG])
def test_make_windows_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_make_windows, wrong, expect)


def windows_by_unfold(ids, context_length, stride):
    w = torch.tensor(ids).unfold(0, context_length + 1, stride)
    return w[:, :-1], w[:, 1:]


def embed(idx, wte, wpe, bug=None):
    T = idx.size(1)
    tok, pos = wte(idx), wpe(torch.arange(T))
    return {
        None: tok + pos,
        "no_pos": tok,
        "only_pos": pos.expand_as(tok),
        "pos_from_ids": tok + wpe(idx),
        "from_one": tok + wpe(torch.arange(1, T + 1)),
        "concat": torch.cat([tok, pos.expand_as(tok)], -1),
        "scaled": tok * tok.size(-1) ** 0.5 + pos,
    }[bug]


def embed_batch_positions(idx, wte, wpe):
    return wte(idx) + wpe(torch.arange(idx.size(0)))


EMBED_WRONG = [
    (lambda i, t, p: embed(i, t, p, "no_pos"), "the position embeddings are missing"),
    (lambda i, t, p: embed(i, t, p, "only_pos"), "only the position embeddings"),
    (lambda i, t, p: embed(i, t, p, "pos_from_ids"), "looked up with the token ids"),
    (lambda i, t, p: embed(i, t, p, "from_one"), "the positions start at 1"),
    (lambda i, t, p: embed(i, t, p, "concat"), "concatenated"),
    (lambda i, t, p: embed(i, t, p, "scaled"), "scaled by sqrt(n_embd)"),
    (embed_batch_positions, "cannot broadcast"),
]


@pytest.mark.parametrize("wrong, expect", EMBED_WRONG, ids=[e for _, e in EMBED_WRONG])
def test_embed_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_embed, wrong, expect)


@pytest.mark.parametrize(
    "check, right",
    [
        (checks.check_make_windows, windows),
        (checks.check_make_windows, windows_by_unfold),
        (checks.check_embed, embed),
        (checks.check_embed, lambda i, t, p: t.weight[i] + p.weight[: i.shape[-1]]),
    ],
)
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize("check", [checks.check_make_windows, checks.check_embed])
def test_stub_is_not_done_yet(check):
    def stub(*args):
        raise NotImplementedError

    assert_stub(check, stub)
