"""The warm-up exercise of notebook 00: a numerically stable softmax."""

from __future__ import annotations

import torch

from ._core import CheckFailure, call, check, compare_tensors

__all__ = ["check_softmax"]


def _reference_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


@check("softmax", _reference_softmax)
def check_softmax(f):
    """Check ``softmax(x)`` over the last dimension: any batch shape, very large inputs."""
    g = torch.Generator().manual_seed(0)
    # 3-D, not square, so that a fixed dim=1 or dim=0 gives a different answer.
    x = torch.randn(2, 3, 7, generator=g) * 3
    e = torch.exp(x)
    bugs = [
        (
            (
                "the sum runs over the wrong dimension: each row (the last axis) sums to 1",
                "use dim=-1 for both the max and the sum, so that any batch shape works",
            ),
            e / e.sum(dim=d, keepdim=True),
        )
        for d in (0, 1)
    ]
    bugs.append(("this is log-softmax: exponentiate and normalise", x - x.logsumexp(-1, True)))
    bugs.append(("each row is not normalised: divide by the row's sum", e))
    compare_tensors(call(f, x, names=["x"]), _reference_softmax(x),
                    what="softmax of a (2, 3, 7) tensor", likely_bugs=bugs)  # fmt: skip
    # Rows of very different scales: only the row's own max keeps both finite.
    big = torch.tensor([[1000.0, 1001.0, 1002.0], [-3.0, 0.0, 1.0]])
    got = call(f, big, names=["x"])
    if isinstance(got, torch.Tensor) and got.shape == big.shape and got.isnan().any():
        which = "row 1 [-3, 0, 1]" if not got[0].isnan().any() else "row 0 [1000, 1001, 1002]"
        raise CheckFailure(
            (
                f"softmax of {which} gave NaN: exp() overflowed or every term underflowed. "
                "Likely bug: subtract each row's own max before exp() (the result is the "
                "same), not the max of the whole tensor"
            )
            if which.startswith("row 1")
            else (
                f"softmax of {which} gave NaN: exp(1000) overflows. Likely bug: subtract "
                "each row's max before exp() (the result is the same)"
            )
        )
    compare_tensors(
        got, _reference_softmax(big), what="softmax of [[1000, 1001, 1002], [-3, 0, 1]]"
    )
