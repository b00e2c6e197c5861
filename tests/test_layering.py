"""Imports point only down the layer table of docs/contributing.md, never in a cycle, and never
into the workshop from outside it. Every import counts, function-level ones included; only
``TYPE_CHECKING`` imports, which never run, are left out. There is no exemption list."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "gpt2course"

# Lower numbers are lower layers; a module may import its own layer or below.
LAYERS = {"base": 0, "pieces": 1, "weights": 2, "training": 3, "learner": 4, "workshop": 5}
LAYER_OF = {
    "__init__": "base",
    "device": "base",
    "files": "base",
    "assets": "base",
    "config": "base",
    "tokenizer": "pieces",
    "attention": "pieces",
    "model": "pieces",
    "data": "pieces",
    "generation": "pieces",
    "fastgen": "pieces",
    "cache": "pieces",
    "chat": "pieces",
    "metrics": "pieces",
    "pretrained": "weights",
    "checkpoint": "weights",
    "train": "training",
    "callbacks": "training",
    "lora": "training",
    "instruct": "training",
    "preference": "training",
    "rlhf": "training",  # reward model, RL with a KL penalty, DPO on the same pairs (part 10)
    "experiments": "training",  # the notebooks' experiments: small trainings, measurements
    "checks": "learner",
    "figures": "learner",
    "widgets": "learner",
    "doctor": "learner",
    "workbench": "learner",
    "recorded": "learner",  # shows recorded full-size results; notebooks import it
    "workshop": "workshop",  # builds, ships, measures and diagnoses the course
    "__main__": "workshop",  # names its verbs' modules as strings, imports none of them
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Every gpt2course name a file imports, at any depth, except under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for b in node.body for n in ast.walk(b)}
    out = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")
                mod = ".".join(base[: len(base) - node.level + 1] + ([mod] if mod else []))
            out += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return [n for n in out if n == "gpt2course" or n.startswith("gpt2course.")]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _real_module(name: str) -> str | None:
    """The gpt2course module (package or file) that an imported dotted name lives in."""
    parts = name.split(".")
    while parts:
        p = PKG.parent.joinpath(*parts)
        if p.with_suffix(".py").is_file() or (p / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def _graph() -> dict[str, set[str]]:
    """module -> the gpt2course modules it imports. A submodule importing its own package
    is left out (Python has already begun that package); a package importing its submodules
    is kept: importing the package runs them, so whoever imports it depends on them."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        me = _module_name(path)
        deps = graph.setdefault(me, set())
        for name in _imports(path):
            target = _real_module(name)
            if target and target != me and not me.startswith(target + "."):
                deps.add(target)
    return graph


def test_every_module_has_a_layer():
    tops = {_top(_module_name(p)) for p in PKG.rglob("*.py")}
    assert tops <= set(LAYER_OF), f"add {sorted(tops - set(LAYER_OF))} to LAYER_OF"


def test_nothing_outside_the_workshop_imports_it():
    outside = [
        f"{me} imports {dep}"
        for me, deps in _graph().items()
        for dep in deps
        if _top(dep) == "workshop" and _top(me) != "workshop"
    ]
    assert not outside, "the library must not import the workshop:\n" + "\n".join(sorted(outside))


def test_imports_point_down():
    upward = []
    for me, deps in _graph().items():
        for dep in deps:
            a, b = LAYER_OF[_top(me)], LAYER_OF[_top(dep)]
            if LAYERS[b] > LAYERS[a]:
                upward.append(f"{me} ({a}) imports {dep} ({b})")
    assert not upward, "imports that point up the layer table:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    cycles: list[str] = []
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if seen.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d) :] + [d]))
            elif d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
