"""The warm-up exercise of notebook 00: a numerically stable softmax."""

from __future__ import annotations

import torch

from ._core import compare_tensors, run_check

__all__ = ["check_softmax"]


def _reference_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def check_softmax(softmax, hint: int = 1):
    """Check ``softmax(x)`` over the last dimension, including very large inputs."""

    def test(f):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 7, generator=g) * 3
        naive = torch.exp(x) / torch.exp(x).sum(dim=0, keepdim=True)
        compare_tensors(
            f(x),
            _reference_softmax(x),
            what="softmax of a (4, 7) tensor",
            likely_bugs=[
                ("did you sum over the wrong dimension? Use dim=-1 (each row sums to 1).", naive)
            ],
        )
        big = torch.tensor([[1000.0, 1001.0, 1002.0]])
        got = f(big)
        if isinstance(got, torch.Tensor) and torch.isnan(got).any():
            from ._core import CheckFailure

            raise CheckFailure(
                "softmax of [1000, 1001, 1002] gave NaN: exp(1000) overflows. "
                "Likely bug: subtract each row's max before exp() (the result is the same)."
            )
        compare_tensors(got, _reference_softmax(big), what="softmax of [1000, 1001, 1002]")

    return run_check("softmax", softmax, _reference_softmax, test, hint=hint)
