"""Checks for the exercises of part 2: training windows and the embedding sum."""

from __future__ import annotations

import torch

from .. import data as reference
from ._core import CheckFailure, call, check, compare_tensors, require_tensor

__all__ = ["check_embed", "check_make_windows"]

# (n_ids, context_length, stride): overlapping, non-overlapping, and a stride that leaves a tail.
_WINDOW_CASES = [(23, 4, 3), (20, 5, 5), (12, 3, 1), (9, 8, 2)]


def _windows_by_slicing(ids, context_length, stride, *, drop_last=False, step=None):
    """Windows cut the plain way, with knobs that reproduce the usual mistakes."""
    n = len(ids)
    starts = list(range(0, n - context_length - 1 + 1, step or stride))
    if drop_last:
        starts = starts[:-1]
    xs = [ids[s : s + context_length] for s in starts]
    ys = [ids[s + 1 : s + 1 + context_length] for s in starts]
    return torch.tensor(xs), torch.tensor(ys)


@check(
    "make_windows",
    reference.make_windows,
    crash_meanings=[
        (
            r"expected sequence of length",
            "the windows have different lengths: the last one ran past the end of ids; the "
            "last start must leave room for context_length + 1 ids",
        )
    ],
)
def check_make_windows(f):
    """Check ``make_windows(ids, context_length, stride) -> (inputs, targets)``."""
    for n, ctx, stride in _WINDOW_CASES:
        # Random ids, not a sorted run: with ids = 100, 101, ... "targets = inputs + 1"
        # would pass.
        g = torch.Generator().manual_seed(n)
        ids = torch.randint(0, 50257, (n,), generator=g).tolist()
        got = call(f, ids, ctx, stride, names=["ids"])
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise CheckFailure(
                "make_windows should return two tensors, (inputs, targets); "
                f"got {type(got).__name__}"
            )
        inputs, targets = got
        require_tensor(inputs, "inputs", dtype=torch.long)
        require_tensor(targets, "targets", dtype=torch.long)
        x_ref, y_ref = reference.make_windows(ids, ctx, stride)
        case = f"with {n} ids, context_length={ctx}, stride={stride}"
        window_bugs = [
            (
                "the last window is missing: a window fits as long as start + context_length + 1 "
                "<= len(ids), so the last start is len(ids) - context_length - 1",
                _windows_by_slicing(ids, ctx, stride, drop_last=True)[0],
            ),
            (
                "the windows ignore the stride: step the start by stride, not by 1",
                _windows_by_slicing(ids, ctx, stride, step=1)[0],
            ),
            (
                "the windows step by context_length instead of by stride",
                _windows_by_slicing(ids, ctx, stride, step=ctx)[0],
            ),
        ]
        compare_tensors(
            inputs, x_ref, what=f"inputs {case}", atol=0, rtol=0, likely_bugs=window_bugs
        )
        compare_tensors(
            targets,
            y_ref,
            what=f"targets {case}",
            atol=0,
            rtol=0,
            likely_bugs=[
                (
                    "the target is the input itself; it should be the input shifted by one "
                    "(ids[start + 1 : start + context_length + 1]), the next token at each position",
                    x_ref,
                ),
                (
                    "the targets are the inputs plus one; they are the next ids in the text "
                    "(the window shifted by one position), not the ids' values plus one",
                    x_ref + 1,
                ),
            ],
        )


@check("embed", reference.embed)
def check_embed(f):
    """Check ``embed(idx, wte, wpe) -> (B, T, C)``: token plus position embeddings."""
    g = torch.Generator().manual_seed(0)
    # Token ids stay below context_length so that a wpe(idx) mix-up runs and can be named.
    wte, wpe = torch.nn.Embedding(20, 8), torch.nn.Embedding(32, 8)
    with torch.no_grad():
        wte.weight.copy_(torch.randn(20, 8, generator=g))
        wpe.weight.copy_(torch.randn(32, 8, generator=g))
    idx = torch.randint(0, 20, (2, 6), generator=g)
    idx[:, 0] = torch.tensor([3, 7])
    T = idx.size(1)
    with torch.no_grad():
        got = call(f, idx, wte, wpe, names=["idx", "wte", "wpe"])
        expected = reference.embed(idx, wte, wpe)
        tok, pos = wte(idx), wpe(torch.arange(T))
        bugs = [
            ("the position embeddings are missing: add wpe(positions) to wte(idx)", tok),
            ("only the position embeddings are there: add wte(idx) too", pos.expand_as(tok)),
            (
                "the positions are looked up with the token ids; wpe takes the positions "
                "0..T-1, whatever the tokens are",
                tok + wpe(idx),
            ),
            (
                "the positions start at 1; they start at 0: torch.arange(T)",
                tok + wpe(torch.arange(1, T + 1)),
            ),
            (
                "the embeddings are concatenated; GPT-2 adds them, so the width stays n_embd",
                torch.cat([tok, pos.expand_as(tok)], dim=-1),
            ),
            (
                "the token embeddings are scaled by sqrt(n_embd), as in the original "
                "Transformer; GPT-2 adds them unscaled",
                tok * 8**0.5 + pos,
            ),
        ]
    compare_tensors(got, expected, what="embedding sum", likely_bugs=bugs)
