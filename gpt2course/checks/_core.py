"""The machinery every check uses: run the learner's code, compare, explain, fall back.

A check is called as ``my_fn = check_thing(my_fn)``. It returns the function the rest of
the notebook should use: the learner's when it is right, else the reference, so that an
unfinished or wrong exercise never stops the notebook.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F")


class CheckFailure(AssertionError):
    """The learner's code ran but gave a wrong answer; the message says what and why."""


def strict() -> bool:
    """Whether a failing check raises instead of falling back (tests, and learners who ask)."""
    return os.environ.get("GPT2COURSE_STRICT_CHECKS", "") not in ("", "0")


def run_check(name: str, learner: F, reference: F, test: Callable[[F], Any]) -> F:
    """Run ``test(learner)``, print one line that says how it went, return what to use next.

    ``test`` raises ``CheckFailure`` with a helpful message when the learner's code is wrong.
    """
    try:
        test(learner)
    except NotImplementedError:
        print(f"… {name}: not done yet. Carrying on with the reference implementation.")
        return reference
    except CheckFailure as e:
        if strict():
            raise
        print(f"✗ {name}: {e}\n  Carrying on with the reference implementation for now.")
        return reference
    except Exception as e:  # the learner's code crashed: say where, do not stop the notebook
        if strict():
            raise
        print(
            f"✗ {name}: your code raised {type(e).__name__}: {e}\n"
            "  Carrying on with the reference implementation for now."
        )
        return reference
    print(f"✓ {name}: matches the reference.")
    from .. import workbench  # imported here: workbench rebuilds pieces through the checks

    workbench.save(name, learner)  # so the next notebooks build on it
    return learner


def _describe(x: Any) -> str:
    import torch

    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def compare_tensors(
    got: Any,
    expected: Any,
    *,
    what: str = "output",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    likely_bugs: Iterable[tuple[str, Any]] = (),
) -> None:
    """Raise ``CheckFailure`` unless ``got`` matches ``expected``.

    ``likely_bugs`` pairs a diagnosis ("is the mask applied before the softmax?") with the
    output that bug would produce; when ``got`` matches one of them, the message names it.
    """
    import torch

    if not isinstance(got, torch.Tensor):
        raise CheckFailure(f"the {what} should be a tensor, got {_describe(got)}")
    if got.shape != expected.shape:
        for hint, wrong in likely_bugs:
            if isinstance(wrong, torch.Tensor) and got.shape == wrong.shape:
                if torch.allclose(got.double(), wrong.double(), atol=atol, rtol=rtol):
                    raise CheckFailure(
                        f"the {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}. "
                        f"Likely bug: {hint}"
                    )
        raise CheckFailure(
            f"the {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        )
    g, e = got.detach().double().cpu(), expected.detach().double().cpu()
    if torch.isnan(g).any() and not torch.isnan(e).any():
        raise CheckFailure(f"the {what} contains NaN ({int(torch.isnan(g).sum())} values)")
    close = torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
    if bool(close.all()):
        return
    err = (g - e).abs().nan_to_num(float("inf")).max().item()
    pct = 100.0 * (1 - close.double().mean().item())
    msg = f"the {what} differs from the reference: max error {err:.3g}, {pct:.1f}% of values wrong"
    for hint, wrong in likely_bugs:
        if isinstance(wrong, torch.Tensor) and wrong.shape == got.shape:
            if torch.allclose(
                g, wrong.detach().double().cpu(), atol=atol, rtol=rtol, equal_nan=True
            ):
                raise CheckFailure(f"{msg}. Likely bug: {hint}")
    raise CheckFailure(msg)


def compare_values(
    got: Any, expected: Any, *, what: str = "result", likely_bugs: Iterable[tuple[str, Any]] = ()
) -> None:
    """Raise ``CheckFailure`` unless ``got == expected`` (plain Python values)."""
    if got == expected:
        return
    for hint, wrong in likely_bugs:
        if got == wrong:
            raise CheckFailure(
                f"the {what} is {_short(got)}, expected {_short(expected)}. Likely bug: {hint}"
            )
    raise CheckFailure(f"the {what} is {_short(got)}, expected {_short(expected)}")


def _short(x: Any, n: int = 120) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."
