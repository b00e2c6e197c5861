"""Your workbench: the pieces you wrote, carried from one notebook to the next.

Once this module is imported (every notebook with exercises imports it beside the checks), a
check that passes keeps the source of your function or class here. A later notebook
asks for the pieces it builds on (``workbench.use("CausalSelfAttention", "MLP")``) and gets
yours, rebuilt from that source and checked again, or the reference for any piece that is
missing or no longer passes, each on its own: a wrong MLP does not throw away a right
attention. So part 7 loads OpenAI's weights into *your* GPT, built from *your* blocks, encodes
its prompts with *your* tokenizer from part 1, and generates with *your* KV cache's store.

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
import builtins
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
from .checks._core import ON_FAIL, ON_PASS


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
        Piece("count_pairs", "01", "check_count_pairs"),
        Piece("merge", "01", "check_merge"),
        Piece("encode", "01", "check_encode"),
        Piece("decode", "01", "check_decode"),
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
        Piece("LayerCache", "05", "check_layer_cache"),
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
    uses: frozenset[str] = frozenset()  # the names its code reads from outside itself


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


def _cell_text(obj: Any) -> str:
    """The text of the cell (or file) that defined ``obj``, or ''."""
    members = [obj] if not isinstance(obj, type) else list(vars(obj).values())
    for member in members:
        code = getattr(getattr(member, "__func__", member), "__code__", None)
        if code is not None:
            return "".join(linecache.getlines(code.co_filename))
    return ""


def free_names(source: str) -> set[str]:
    """The names ``source`` reads that it does not define itself (nor Python's builtins)."""
    tree = ast.parse(source)
    read, bound = set(), set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return read - bound


def _defined(node: ast.stmt) -> set[str]:
    """The names a top-level statement of a cell defines."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _with_helpers(name: str, source: str, cell: str) -> str:
    """``source`` preceded by what it reads from its own cell: a helper function, a constant."""
    try:
        statements = ast.parse(cell).body
    except SyntaxError:
        return source
    lines = cell.splitlines(keepends=True)
    wanted, keep = free_names(source) - set(PIECES), []
    for node in reversed(statements):  # a helper may use a helper defined above it
        names = _defined(node)
        if names & wanted and name not in names:
            text = "".join(lines[node.lineno - 1 : node.end_lineno])
            keep.insert(0, textwrap.dedent(text))
            wanted |= free_names(text) - set(PIECES)
    return "".join(t if t.endswith("\n") else t + "\n" for t in keep) + source


_rebuilding = False  # a piece's check run while it is rebuilt must not save it again


def save(name: str, obj: Any) -> bool:
    """Keep the source of a piece that passed its check; False when it cannot be kept."""
    if name not in PIECES or _rebuilding:
        return False
    if is_package_code(obj):
        return False  # the package's own reference, not the learner's
    try:
        source = _with_helpers(getattr(obj, "__name__", name), source_of(obj), _cell_text(obj))
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
        (d / f".{name}.failed").unlink(missing_ok=True)
    except OSError:
        return False
    return True


def _note_failure(name: str, obj: Any, why: str) -> None:
    """Remember that the learner's latest attempt at a piece did not pass: the saved one, if
    any, is an earlier version, and the line that says "yours" must say so."""
    if name not in PIECES or _rebuilding or is_package_code(obj):
        return
    with contextlib.suppress(OSError):
        if (folder() / f"{name}.py").is_file():
            (folder() / f".{name}.failed").write_text(why, encoding="utf-8")


def is_package_code(obj: Any) -> bool:
    """Whether ``obj`` is the package's own (a reference), not the learner's."""
    return (getattr(obj, "__module__", None) or "").startswith("gpt2course.")


if save not in ON_PASS:  # a passing check keeps its piece here
    ON_PASS.append(save)
if _note_failure not in ON_FAIL:
    ON_FAIL.append(_note_failure)


def forget(*names: str) -> None:
    """Drop saved pieces (all when no names are given), so that the references are used."""
    for name in names or PIECES:
        (folder() / f"{name}.py").unlink(missing_ok=True)
        (folder() / f".{name}.failed").unlink(missing_ok=True)


def _rebuild(piece: Piece, namespace: dict) -> _Loaded:
    """Your piece from its saved source, if it is there and still passes its check."""
    path = folder() / f"{piece.name}.py"
    if not path.is_file():
        return _fallback(piece, namespace, "not saved yet")
    source = path.read_text(encoding="utf-8")
    try:
        reads = frozenset(free_names(source))
    except SyntaxError:
        reads = frozenset()
    unsaved = sorted(reads - set(namespace) - {piece.name})
    lacking = (
        f"; it uses {', '.join(unsaved)}, which was not saved with it: define that in the "
        f"same cell as {piece.name}"
        if unsaved
        else ""
    )
    filename = f"<your {piece.name} from part {piece.part}>"
    # Registered so that a traceback through your code shows your lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = dict(namespace)
    try:
        exec(compile(source, filename, "exec"), ns)
        obj = ns[piece.name]
    except Exception as e:  # the saved code no longer runs: say so, use the reference
        return _fallback(
            piece, namespace, f"your saved code failed, {type(e).__name__}: {e}{lacking}"
        )
    global _rebuilding
    _rebuilding = True
    try:
        with mock.patch.dict(os.environ, {"GPT2COURSE_STRICT_CHECKS": "1"}):
            uses = [namespace[n] for n in piece.uses]
            passed = _quiet(lambda: getattr(checks, piece.check)(obj, *uses)) is obj
    except Exception as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        return _fallback(piece, namespace, f"no longer passes its check: {why}{lacking}")
    finally:
        _rebuilding = False
    if not passed:
        return _fallback(piece, namespace, f"no longer passes its check{lacking}")
    with contextlib.suppress(AttributeError, TypeError):
        obj.__workbench__ = "yours"
    _mark_helper_classes(source, ns, namespace)
    failed = folder() / f".{piece.name}.failed"
    why = ""
    if failed.is_file():
        latest = failed.read_text(encoding="utf-8").strip() or "failed"
        why = (
            f"an earlier version: your last attempt {'failed its check' if latest == 'failed' else 'was not done'}, "
            "so the one that passed before is in use"
        )
    return _Loaded(obj, True, why, reads)


def _mark_helper_classes(source: str, ns: dict, namespace: dict) -> None:
    """A class saved with a piece from its cell (notebook 04's ``LayerNorm``, which runs your
    ``layer_norm`` in your ``Block``) is yours when the pieces it calls are yours too."""
    lines = source.splitlines(keepends=True)
    for node in ast.parse(source).body:
        cls = ns.get(node.name) if isinstance(node, ast.ClassDef) else None
        if not isinstance(cls, type) or is_yours(cls):
            continue
        text = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno]))
        if all(is_yours(namespace.get(n)) for n in free_names(text) & set(PIECES)):
            with contextlib.suppress(AttributeError, TypeError):
                cls.__workbench__ = "yours"


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
        print(_summary({n: loaded[n] for n in names}, loaded))
    objs = tuple(loaded[n].obj for n in names)
    return objs[0] if len(objs) == 1 else objs


def _summary(loaded: dict[str, _Loaded], every: dict[str, _Loaded] | None = None) -> str:
    every = every or loaded
    yours = []
    for n, x in loaded.items():
        if not x.yours:
            continue
        # A piece of yours built on a piece that fell back is not all yours: say which.
        fell = [u for u in PIECES if u in x.uses and u in every and not every[u].yours]
        notes = [f"with the reference's {', '.join(fell)}"] if fell else []
        notes += [x.why] if x.why else []
        yours.append(n + (f" ({'; '.join(notes)})" if notes else ""))
    ref = [
        f"{n} ({x.why}; run its check cell in notebook {PIECES[n].part} to use yours)"
        for n, x in loaded.items()
        if not x.yours
    ]
    parts = [f"yours: {', '.join(yours)}"] if yours else []
    parts += [f"the reference's: {'; '.join(ref)}"] if ref else []
    line = "Pieces in use, " + ". ".join(parts) + "."
    if ref and "google.colab" in sys.modules and "GPT2COURSE_WORKBENCH" not in os.environ:
        line += (
            " (Colab runs each notebook on its own machine: mount Google Drive, then run the "
            "first cell again, to carry your pieces from one notebook to the next.)"
        )
    return line


def is_yours(obj: Any) -> bool:
    """Whether ``obj`` (a function or class from ``use``) is your code, rebuilt and checked."""
    return getattr(obj, "__workbench__", None) == "yours"


def whose(obj: Any) -> str:
    """The word for a line that says whose ``obj`` is: "your", or "the reference's"."""
    return "your" if is_yours(obj) else "the reference's"


def describe(model: Any) -> str:
    """One line: which of a model's parts are your code and which the reference's."""
    seen: dict[str, bool] = {}
    for module in model.modules():
        cls = type(module)
        if cls.__module__.startswith("torch."):
            continue
        # Yours: rebuilt from your workbench, or defined in this notebook (module __main__).
        mine = is_yours(cls) or cls.__module__ == "__main__"
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
