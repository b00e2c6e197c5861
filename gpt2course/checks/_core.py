"""The machinery every check uses: run the learner's code, compare, explain, fall back.

A check is called as ``my_fn = check_thing(my_fn)``. It returns the function the rest of
the notebook should use: the learner's when it is right, else the reference, so that an
unfinished or wrong exercise never stops the notebook.

Hints come in levels: a likely bug's hint is a string, or a tuple of strings from "names
the bug" to "a bigger step"; ``check_thing(fn, hint=2)`` shows the second. No level is the
solution line itself. An exercise's own hints work the same way: the notebook's ``# HINT:``
names the step (level 1), and ``@check(..., hints=(level 2, level 3, ...))`` gives bigger
steps to a learner who is not done or stuck and asks for them.
"""

from __future__ import annotations

import contextvars
import copy
import os
import re
import sysconfig
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch

F = TypeVar("F")
Hint = str | Sequence[str]

_LEVEL: contextvars.ContextVar[int] = contextvars.ContextVar("hint_level", default=1)
_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("check_name", default="check")
# Called as f(name, piece) for each piece that passes its check. The workbench subscribes when
# it is imported, to keep the piece for the next notebooks; the checks know nothing of it.
ON_PASS: list[Callable[[str, Any], Any]] = []
# Called as f(name, piece, why) for each piece that does not pass ("failed" or "not done"),
# so that an earlier passing version kept elsewhere is not taken for this attempt.
ON_FAIL: list[Callable[[str, Any, str], Any]] = []
# What the checks handed back as fallbacks: a learner who re-runs `f = check_f(f)` passes
# one of these again, and must be told that their own definition did not run.
_HANDED_BACK: list[Any] = []

_PACKAGE = Path(__file__).resolve().parents[1]
_LIBRARY = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


class CheckFailure(AssertionError):
    """The learner's code ran but gave a wrong answer; the message says what and why."""


class CheckBug(RuntimeError):
    """The check's own code crashed: a bug of the check, not of the learner's code."""


def strict() -> bool:
    """Whether a failing check raises instead of falling back (tests, and learners who ask)."""
    return os.environ.get("GPT2COURSE_STRICT_CHECKS", "") not in ("", "0")


def say(hint: Hint) -> str:
    """The text of ``hint`` at the level the learner asked for, and how to ask for more."""
    if isinstance(hint, str):
        return hint
    levels = list(hint)
    level = max(1, min(_LEVEL.get(), len(levels)))
    text = levels[level - 1]
    if level < len(levels):
        text += f" (still stuck? run the check again with hint={level + 1})"
    return text


def is_handed_back(obj: Any) -> bool:
    """Whether ``obj`` is a reference that an earlier check handed back."""
    return any(obj is r for r in _HANDED_BACK)


def _hand_back(reference: F) -> F:
    if not is_handed_back(reference):
        _HANDED_BACK.append(reference)
    return reference


# What an error usually means, for the crashes learners hit most.
_MEANINGS: list[tuple[str, str]] = [
    (
        r"view size is not compatible|view\(\) .*contiguous",
        "a .view() on a tensor that is not contiguous (a transpose or a slice changes the "
        "memory layout, not the data): use .reshape(), or .contiguous() before .view()",
    ),
    (
        r"Boolean value of Tensor with more than one value is ambiguous",
        "an `if tensor:` (or `and`/`or` on a tensor): to test whether an optional argument "
        "was given, write `if mask is not None:`",
    ),
    (
        r"mat1 and mat2 shapes cannot be multiplied|size mismatch|shapes cannot be multiplied",
        "a matrix product whose inner sizes differ: print the shapes; a weight may need .T",
    ),
    (
        r"must match the size of tensor b",
        "two tensors that cannot broadcast: print their shapes; an axis is missing "
        "(keepdim=True) or in the wrong place",
    ),
    (
        r"Dimension out of range|IndexError: too many indices",
        "an axis that does not exist: the code assumes a different number of dimensions; "
        "count axes from the end (dim=-1) so that any batch shape works",
    ),
    (
        r"Expected tensor for argument .* indices|expected scalar type Long|Long but found|"
        r"tensors used as indices must be long",
        "ids or indices that are not integers: token ids must be torch.long",
    ),
    (
        r"does not require grad and does not have a grad_fn",
        "a tensor cut off from the graph (.item(), .detach(), torch.tensor(...)): keep the "
        "computation in torch so that backward() can reach the parameters",
    ),
    (
        r"object has no attribute|not subscriptable|cannot unpack|values to unpack",
        "a value of another type than the code expects: a module may return a tuple "
        "(take [0]), or a function returns nothing (a missing return)",
    ),
    (r"division by zero|ZeroDivisionError", "a division by zero: which argument can be 0 here?"),
]


def _is_learner_frame(filename: str) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return True
    s = str(path)
    if s.startswith(str(_PACKAGE)) or filename.startswith("<frozen"):
        return False
    return not any(s.startswith(lib) for lib in _LIBRARY)


def _explain_crash(e: BaseException, test: Callable, meanings: Iterable[tuple[str, str]]) -> str:
    """Whose crash it is (the learner's line, or the check's own), and what it usually means."""
    test_code = getattr(test, "__code__", None)
    codes = [frame.f_code for frame, _ in traceback.walk_tb(e.__traceback__)]
    summary = traceback.extract_tb(e.__traceback__)  # the same frames: file, line, source
    text = f"{type(e).__name__}: {e}"
    learner = [
        i
        for i, (code, s) in enumerate(zip(codes, summary, strict=True))
        if code is not test_code and _is_learner_frame(s.filename)
    ]
    if not learner:
        at = f" ({Path(summary[-1].filename).name}, line {summary[-1].lineno})" if summary else ""
        return (
            f"the check itself crashed{at} with {text}. This is a bug in the check, not in "
            "your code; please report it (your answer was not judged)"
        )
    last = summary[learner[-1]]
    line = f" at line {last.lineno}: `{last.line.strip()}`" if last.line else ""
    meaning = ""
    for pattern, why in [*meanings, *_MEANINGS]:
        if re.search(pattern, text):
            meaning = f"\n  This usually means {why}."
            break
    return f"your code raised {text}{line}{meaning}"


def run_check(
    name: str,
    learner: F,
    reference: F,
    test: Callable[[F], Any],
    *,
    hint: int = 1,
    crash_meanings: Iterable[tuple[str, str]] = (),
    hints: Sequence[str] = (),
) -> F:
    """Run ``test(learner)``, print one line that says how it went, return what to use next.

    ``test`` raises ``CheckFailure`` with a helpful message when the learner's code is wrong.
    ``hint`` is the hint level the learner asked for; ``crash_meanings`` adds
    ``(regex, what it usually means)`` pairs for this exercise's crashes; ``hints`` are the
    exercise's bigger steps (levels 2, 3, ...), shown to a learner who is not there yet.
    """
    if is_handed_back(learner):
        print(
            f"↺ {name}: this is the reference the last check handed back, not your code. "
            f"Run the cell that defines {name} again, then this cell."
        )
        return learner
    t_level, t_name = _LEVEL.set(int(hint)), _NAME.set(name)
    try:
        test(learner)
    except NotImplementedError:
        _notify_fail(name, learner, "not done")
        print(f"… {name}: not done yet. Carrying on with the reference implementation.")
        _print_step(name, hints, int(hint), offer=True)
        return _hand_back(reference)
    except CheckFailure as e:
        _notify_fail(name, learner, "failed")
        if strict():
            raise
        print(f"✗ {name}: {e}\n  Carrying on with the reference implementation for now.")
        _print_step(name, hints, int(hint), offer="hint=" not in str(e))
        return _hand_back(reference)
    except Exception as e:  # a crash: the learner's (say where) or the check's (say so)
        message = _explain_crash(e, test, crash_meanings)
        if not message.startswith("the check itself"):
            _notify_fail(name, learner, "failed")
        if strict():
            if message.startswith("the check itself"):
                raise CheckBug(message) from e
            raise
        print(f"✗ {name}: {message}\n  Carrying on with the reference implementation for now.")
        return _hand_back(reference)
    finally:
        _LEVEL.reset(t_level)
        _NAME.reset(t_name)
    print(f"✓ {name}: matches the reference.")
    for subscriber in ON_PASS:
        subscriber(name, learner)
    return learner


def _notify_fail(name: str, learner: Any, why: str) -> None:
    for subscriber in ON_FAIL:
        subscriber(name, learner, why)


def _print_step(name: str, hints: Sequence[str], level: int, offer: bool) -> None:
    """The exercise's hint at ``level`` (the notebook's is level 1), or where to find one."""
    if not hints:
        return
    if level < 2:
        if offer:
            print("  Stuck? Run the check again with hint=2 for a bigger step than the notebook's.")
        return
    level = min(level, len(hints) + 1)
    more = f" (still stuck? hint={level + 1})" if level <= len(hints) else ""
    print(f"  hint {level} for {name}: {hints[level - 2]}{more}")


def check(
    name: str,
    reference: Any,
    *,
    crash_meanings: Iterable[tuple[str, str]] = (),
    hints: Sequence[str] = (),
):
    """Decorate ``test`` (it raises ``CheckFailure`` on a wrong answer) into the exercise's
    check, ``check_thing(learner, hint=1)``, which runs it through ``run_check``. ``hints``:
    the exercise's steps beyond the notebook's ``# HINT:``, levels 2, 3, ..."""

    def make(test: Callable[[Any], Any]) -> Callable[..., Any]:
        def checker(learner: Any, hint: int = 1) -> Any:
            return run_check(
                name,
                learner,
                reference,
                test,
                hint=hint,
                crash_meanings=crash_meanings,
                hints=hints,
            )

        checker.__name__ = checker.__qualname__ = test.__name__
        checker.__doc__, checker.__module__ = test.__doc__, test.__module__
        return checker

    return make


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def _snapshot(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, list | dict):
        return copy.deepcopy(x)
    return None


def call(f: Callable, *args: Any, names: Sequence[str] = (), **kwargs: Any) -> Any:
    """Call learner code and fail if it changed a tensor, list or dict argument in place."""
    values = [*args, *kwargs.values()]
    labels = [*names, *(f"argument {i + 1}" for i in range(len(names), len(args)))]
    labels += list(kwargs)
    before = [_snapshot(v) for v in values]
    out = f(*args, **kwargs)
    for label, v, b in zip(labels, values, before, strict=True):
        if b is not None and not _equal(v, b):
            raise CheckFailure(
                say(
                    (
                        f"your code changed its input `{label}` in place, so the caller's "
                        "value is overwritten",
                        "in-place operations (x /= ..., x[...] = ..., masked_fill_, "
                        "list.append on the argument) write into the caller's object; compute "
                        "a new tensor or list instead",
                    )
                )
            )
    return out


def require_tensor(got: Any, what: str, *, dtype: Any = None, grad: bool = False) -> None:
    """Fail unless ``got`` is a tensor (of ``dtype``; attached to the graph when ``grad``)."""
    if not isinstance(got, torch.Tensor):
        extra = ""
        if isinstance(got, float | int):
            extra = (
                ": a Python number has no graph, so loss.backward() would fail; "
                "return the tensor, without .item()"
                if grad
                else ": return a tensor"
            )
        elif isinstance(got, tuple):
            extra = ": a tuple; is a [0] missing, or a trailing comma after the return value?"
        raise CheckFailure(f"the {what} should be a tensor, got {_describe(got)}{extra}")
    if dtype is not None and got.dtype != dtype:
        extra = ""
        if dtype == torch.long and got.is_floating_point():
            extra = (
                "; token ids must be integers (nn.Embedding and torch.cat with idx need torch.long)"
            )
        raise CheckFailure(f"the {what} has dtype {got.dtype}, expected {dtype}{extra}")
    if grad and not got.requires_grad:
        raise CheckFailure(
            f"the {what} is cut off from the graph (requires_grad is False): backward() "
            "would reach no parameter. Was it made with .item(), .detach() or torch.tensor()?"
        )


_DEVICE_ERROR = re.compile(
    r"is not on the expected device|Expected all tensors to be on the same device"
)


def _on_cpu_error(mod: Any, args: tuple) -> None:
    for a in args:
        if isinstance(a, torch.Tensor) and a.device.type != "meta":
            raise RuntimeError(
                f"Expected all tensors to be on the same device: {type(mod).__name__} "
                f"got an input on {a.device}"
            )


def require_same_device(module: torch.nn.Module, *inputs: torch.Tensor, name: str = "x") -> None:
    """Fail when ``module``'s forward makes a tensor on the CPU that then meets its input on
    another device: fine on a CPU, a crash on a GPU. Checked without a GPU, on the ``meta``
    device (shapes only), where each layer's input must also be where its weights are (an
    embedding lookup does not check that on meta). Other errors on meta are not judged here."""
    try:
        m = copy.deepcopy(module).to("meta")
    except Exception:  # a module that cannot move is judged by the other tests
        return
    layers = (torch.nn.Embedding, torch.nn.Linear, torch.nn.LayerNorm)
    hooks = [sub.register_forward_pre_hook(_on_cpu_error) for sub in m.modules()
             if isinstance(sub, layers)]  # fmt: skip
    try:
        with torch.no_grad():
            m(*(x.to("meta") for x in inputs))
    except Exception as e:
        if not _DEVICE_ERROR.search(str(e)):
            return
        summary = [
            s for s in traceback.extract_tb(e.__traceback__) if _is_learner_frame(s.filename)
        ]
        line = f" (at `{summary[-1].line.strip()}`)" if summary and summary[-1].line else ""
        raise CheckFailure(
            say(
                (
                    f"your code makes a tensor on the CPU{line} that meets `{name}`, which may "
                    "be on a GPU: this passes on a CPU and fails on a GPU with 'Expected all "
                    f"tensors to be on the same device'. Make it on {name}'s device "
                    f"(device={name}.device, or .to({name}.device))",
                    "a tensor created inside forward (torch.ones, torch.arange, causal_mask(T)) "
                    "lands on the CPU unless told otherwise; a buffer (self.register_buffer) "
                    "moves with the module instead",
                )
            )
        ) from None
    finally:
        for h in hooks:
            h.remove()


def _max_error(g: Any, w: Any) -> float:
    return (g - w).abs().nan_to_num(float("inf")).max().item() if g.numel() else 0.0


def _closest(got: Any, likely_bugs: Iterable[tuple[Hint, Any]], atol: float, rtol: float):
    """The hint of the likely bug whose output ``got`` matches best, or None."""
    g = got.detach().double().cpu()
    best, best_err = None, float("inf")
    for hint, wrong in likely_bugs:
        if not isinstance(wrong, torch.Tensor) or wrong.shape != got.shape:
            continue
        w = wrong.detach().double().cpu()
        if torch.allclose(g, w, atol=atol, rtol=rtol, equal_nan=True):
            err = _max_error(g, w)
            if err < best_err:
                best, best_err = hint, err
    return best


def compare_tensors(
    got: Any,
    expected: Any,
    *,
    what: str = "output",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    likely_bugs: Iterable[tuple[Hint, Any]] = (),
    check_dtype: bool = True,
) -> None:
    """Raise ``CheckFailure`` unless ``got`` matches ``expected`` (shape, dtype, values).

    ``likely_bugs`` pairs a diagnosis ("is the mask applied before the softmax?") with the
    output that bug would produce; when ``got`` matches some, the message names the closest.
    ``got`` is never cast: a wrong dtype is a wrong answer.
    """
    likely_bugs = list(likely_bugs)

    def fail(msg: str) -> NoReturn:
        hint = _closest(got, likely_bugs, atol, rtol)
        raise CheckFailure(msg + (f". Likely bug: {say(hint)}" if hint else ""))

    if not isinstance(got, torch.Tensor):
        require_tensor(got, what)
    if got.shape != expected.shape:
        fail(f"the {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if check_dtype and got.dtype != expected.dtype:
        require_tensor(got, what, dtype=expected.dtype)
    g, e = got.detach().double().cpu(), expected.detach().double().cpu()
    if torch.isnan(g).any() and not torch.isnan(e).any():
        fail(f"the {what} contains NaN ({int(torch.isnan(g).sum())} values)")
    close = torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        pct = 100.0 * (1 - close.double().mean().item())
        fail(
            f"the {what} differs from the reference: max error {_max_error(g, e):.3g}, "
            f"{pct:.1f}% of values wrong"
        )


def _equal(a: Any, b: Any) -> bool:
    """Equality of plain values (of one type) and of tensors, also inside lists and dicts,
    that never lets an odd type crash the check."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.detach(), b)
    if type(a) is not type(b) and not (isinstance(a, dict) and isinstance(b, dict)):
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return False


def compare_values(
    got: Any, expected: Any, *, what: str = "result", likely_bugs: Iterable[tuple[Hint, Any]] = ()
) -> None:
    """Raise ``CheckFailure`` unless ``got == expected`` (plain Python values, same types)."""
    if _equal(got, expected):
        return
    for hint, wrong in likely_bugs:
        if _equal(got, wrong):
            raise CheckFailure(
                f"the {what} is {_short(got)}, expected {_short(expected)}. Likely bug: {say(hint)}"
            )
    extra = ""
    if type(got) is not type(expected) and not isinstance(got, dict):
        extra = f" (a {type(got).__name__}, expected a {type(expected).__name__})"
    elif isinstance(got, list) and any(type(x) is not int for x in got):
        bad = next(x for x in got if type(x) is not int)
        extra = f" (it holds a {type(bad).__name__}; ids are plain Python ints)"
    raise CheckFailure(f"the {what} is {_short(got)}, expected {_short(expected)}{extra}")


def _short(x: Any, n: int = 120) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def compare_value_cases(
    got: Sequence[Any],
    expected: Sequence[Any],
    whats: Sequence[str],
    likely_bugs: Iterable[tuple[Hint, Sequence[Any]]] = (),
) -> None:
    """``compare_values`` over several cases; the hint named is the bug that explains the
    most cases, so that two bugs agreeing on one case do not hide the right one."""
    likely_bugs = list(likely_bugs)
    for i, (g, e, what) in enumerate(zip(got, expected, whats, strict=True)):
        if _equal(g, e):
            continue
        ranked = sorted(
            likely_bugs,
            key=lambda b: -sum(_equal(x, y) for x, y in zip(got, b[1], strict=True)),
        )
        compare_values(g, e, what=what, likely_bugs=[(h, outs[i]) for h, outs in ranked])
