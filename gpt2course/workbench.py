"""Your workbench: the pieces you wrote, carried from one notebook to the next.

Once this module is imported (every notebook with exercises imports it beside the checks), a
check that passes keeps the source of your function or class here. A later notebook
asks for the pieces it builds on (``workbench.use("CausalSelfAttention", "MLP")``) and gets
yours, rebuilt from that source and checked again, or the reference for any piece that is
missing or no longer passes, each on its own: a wrong MLP does not throw away a right
attention. So part 7 loads OpenAI's weights into *your* GPT, built from *your* blocks.

Each piece is rebuilt in a namespace that holds the course's usual imports and every piece
before it in the course (yours or the reference), so your ``Block`` finds your
``CausalSelfAttention`` by name, as it did in your notebook.

The pieces live in ``$GPT2COURSE_WORKBENCH``, else in ``.gpt2course-workbench`` beside the
notebook (so your notebooks and the solutions keep apart). Colab gives every notebook its
own machine: mount Google Drive and set ``GPT2COURSE_WORKBENCH`` to a folder on it to carry
your pieces from one notebook to the next there.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import linecache
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from . import checks
from .checks._core import ON_PASS


@dataclass(frozen=True)
class Piece:
    """One exercise whose result later notebooks build on."""

    name: str
    part: str  # the notebook that teaches it, "03"
    check: str  # its check in gpt2course.checks; the check's fallback is the reference
    uses: tuple[str, ...] = ()  # earlier pieces the check builds its reference from


# In course order: a piece may use any piece above it.
PIECES: dict[str, Piece] = {
    p.name: p
    for p in [
        Piece("causal_mask", "03", "check_causal_mask"),
        Piece("scaled_dot_product_attention", "03", "check_scaled_dot_product_attention"),
        Piece("split_heads", "03", "check_split_heads"),
        Piece("merge_heads", "03", "check_merge_heads"),
        Piece("CausalSelfAttention", "03", "check_causal_self_attention"),
        Piece("layer_norm", "04", "check_layer_norm"),
        Piece("gelu", "04", "check_gelu"),
        Piece("MLP", "04", "check_mlp"),
        Piece("Block", "04", "check_block"),
        Piece("GPT", "05", "check_gpt", uses=("Block",)),
        Piece("sample_next_token", "05", "check_sample_next_token"),
        Piece("lm_loss", "06", "check_lm_loss"),
        Piece("lr_schedule", "06", "check_lr_schedule"),
        Piece("train_step", "06", "check_train_step"),
    ]
}

# What every notebook imports before its exercises: a rebuilt piece sees the same names.
_PRELUDE = """
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from gpt2course.model import GPTConfig
"""


def folder() -> Path:
    """Where the pieces are kept: ``$GPT2COURSE_WORKBENCH``, else beside the notebook."""
    env = os.environ.get("GPT2COURSE_WORKBENCH")
    return Path(env).expanduser() if env else Path.cwd() / ".gpt2course-workbench"


def _not_done(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


@dataclass
class _Loaded:
    obj: Any
    yours: bool
    why: str = ""


def _quiet(fn: Callable[[], Any]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def _fallback(piece: Piece, namespace: dict, why: str) -> _Loaded:
    """The reference with the exercise's interface: what the check hands back for a stub
    (built from the pieces in ``namespace``: a fallback GPT keeps your Block)."""
    uses = [namespace[n] for n in piece.uses]
    return _Loaded(_quiet(lambda: getattr(checks, piece.check)(_not_done, *uses)), False, why)


def source_of(obj: Any) -> str:
    """The source of a function or class defined in a notebook cell (or a file)."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        pass
    if not isinstance(obj, type):
        raise ValueError(f"the source of {obj!r} cannot be found")
    # A class defined in a notebook: Python cannot find its file, but each method knows the
    # cell it came from, and the cell's text is in linecache.
    for member in vars(obj).values():
        code = getattr(getattr(member, "__func__", member), "__code__", None)
        if code is None:
            continue
        text = "".join(linecache.getlines(code.co_filename))
        if not text:
            continue
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.ClassDef)
                and node.name == obj.__name__
                and node.lineno <= code.co_firstlineno <= (node.end_lineno or 0)
            ):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = text.splitlines(keepends=True)[start - 1 : node.end_lineno]
                return textwrap.dedent("".join(lines))
    raise ValueError(f"the source of class {obj.__name__} cannot be found")


_rebuilding = False  # a piece's check run while it is rebuilt must not save it again


def save(name: str, obj: Any) -> bool:
    """Keep the source of a piece that passed its check; False when it cannot be kept."""
    if name not in PIECES or _rebuilding:
        return False
    if (getattr(obj, "__module__", None) or "").startswith("gpt2course."):
        return False  # the package's own reference, not the learner's
    try:
        source = source_of(obj)
    except (ValueError, SyntaxError):
        return False
    if getattr(obj, "__name__", name) != name:  # `my_attention = check_x(...)`: keep its name
        source += f"\n{name} = {obj.__name__}\n"
    d = folder()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{name}.py.part"
        tmp.write_text(source, encoding="utf-8")
        os.replace(tmp, d / f"{name}.py")
    except OSError:
        return False
    return True


if save not in ON_PASS:  # a passing check keeps its piece here
    ON_PASS.append(save)


def forget(*names: str) -> None:
    """Drop saved pieces (all when no names are given), so that the references are used."""
    for name in names or PIECES:
        (folder() / f"{name}.py").unlink(missing_ok=True)


def _rebuild(piece: Piece, namespace: dict) -> _Loaded:
    """Your piece from its saved source, if it is there and still passes its check."""
    path = folder() / f"{piece.name}.py"
    if not path.is_file():
        return _fallback(piece, namespace, f"not saved yet: run part {piece.part}'s check")
    source = path.read_text(encoding="utf-8")
    filename = f"<your {piece.name} from part {piece.part}>"
    # Registered so that a traceback through your code shows your lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = dict(namespace)
    try:
        exec(compile(source, filename, "exec"), ns)
        obj = ns[piece.name]
    except Exception as e:  # the saved code no longer runs: say so, use the reference
        return _fallback(piece, namespace, f"your saved code failed, {type(e).__name__}: {e}")
    global _rebuilding
    _rebuilding = True
    try:
        with mock.patch.dict(os.environ, {"GPT2COURSE_STRICT_CHECKS": "1"}):
            uses = [namespace[n] for n in piece.uses]
            passed = _quiet(lambda: getattr(checks, piece.check)(obj, *uses)) is obj
    except Exception as e:
        return _fallback(piece, namespace, f"no longer passes its check: {str(e)[:80]}")
    finally:
        _rebuilding = False
    if not passed:
        return _fallback(piece, namespace, "no longer passes its check")
    with contextlib.suppress(AttributeError, TypeError):
        obj.__workbench__ = "yours"
    return _Loaded(obj, True)


def _load(names: tuple[str, ...]) -> dict[str, _Loaded]:
    unknown = [n for n in names if n not in PIECES]
    if unknown:
        raise KeyError(f"no piece {unknown[0]!r} on the workbench; the pieces: {', '.join(PIECES)}")
    last = max(list(PIECES).index(n) for n in names)
    namespace: dict = {}
    exec(_PRELUDE, namespace)
    loaded: dict[str, _Loaded] = {}
    for piece in list(PIECES.values())[: last + 1]:
        loaded[piece.name] = _rebuild(piece, namespace)
        namespace[piece.name] = loaded[piece.name].obj
    return loaded


def use(*names: str, quiet: bool = False) -> Any:
    """Your pieces where you have them, else the references: one object, or a tuple of them.

    Prints one line that says which are yours, unless ``quiet``.
    """
    if not names:
        raise ValueError('name the pieces to use, e.g. workbench.use("CausalSelfAttention")')
    loaded = _load(names)
    if not quiet:
        print(_summary({n: loaded[n] for n in names}))
    objs = tuple(loaded[n].obj for n in names)
    return objs[0] if len(objs) == 1 else objs


def _summary(loaded: dict[str, _Loaded]) -> str:
    yours = [n for n, x in loaded.items() if x.yours]
    ref = [f"{n} ({x.why})" for n, x in loaded.items() if not x.yours]
    parts = [f"yours: {', '.join(yours)}"] if yours else []
    parts += [f"the reference's: {'; '.join(ref)}"] if ref else []
    line = "Pieces in use, " + ". ".join(parts) + "."
    if ref and "google.colab" in sys.modules and "GPT2COURSE_WORKBENCH" not in os.environ:
        line += (
            " (Colab runs each notebook on its own machine: mount Google Drive, then run the "
            "first cell again, to carry your pieces from one notebook to the next.)"
        )
    return line


def describe(model: Any) -> str:
    """One line: which of a model's parts are your code and which the reference's."""
    seen: dict[str, bool] = {}
    for module in model.modules():
        cls = type(module)
        if cls.__module__.startswith("torch."):
            continue
        # Yours: rebuilt from your workbench, or defined in this notebook (module __main__).
        mine = getattr(cls, "__workbench__", None) == "yours" or cls.__module__ == "__main__"
        seen.setdefault(cls.__name__, mine)
    yours = [n for n, y in seen.items() if y]
    ref = [n for n, y in seen.items() if not y]
    return (
        f"This model's parts: yours: {', '.join(yours) or 'none'}; "
        f"the reference's: {', '.join(ref) or 'none'}."
    )


def saved() -> dict[str, str]:
    """The saved pieces and their sources (for a look, or to copy elsewhere)."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder().glob("*.py"))}
