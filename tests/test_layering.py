"""Imports point only down the layer table of docs/contributing.md, and never in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "gpt2course"

# Lower numbers are lower layers; a module may import its own layer or below.
LAYERS = {
    "base": 0,  # device, files, assets, config
    "pieces": 1,  # tokenizer, attention, model, data, generation, fastgen
    "weights": 2,  # pretrained, checkpoint
    "training": 3,  # train, callbacks, lora, instruct, preference, offline
    "learner": 4,  # checks, widgets, doctor
    "build": 5,  # course (the notebook generator, which the entry points run)
    "entry": 6,  # __main__, cli, cli_*, bench
}
LAYER_OF = {
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
    "pretrained": "weights",
    "checkpoint": "weights",
    "train": "training",
    "callbacks": "training",
    "lora": "training",
    "instruct": "training",
    "preference": "training",
    "offline": "training",
    "metrics": "pieces",
    "experiments": "training",  # the notebooks' experiments: small trainings, measurements
    "checks": "learner",
    "figures": "learner",
    "widgets": "learner",
    "doctor": "learner",
    "workbench": "learner",
    "__main__": "entry",
    "cli": "entry",
    "cli_assets": "entry",
    "cli_generate": "entry",
    "cli_notebooks": "entry",
    "bench": "entry",
    "course": "build",
    "recorded": "build",
    "portability": "build",
    "__init__": "base",
}

# Old names kept importable where they were: a module-level __getattr__ that imports the
# module the code moved to, which sits above. Each is a shim, not a dependency.
SHIMS = {
    ("assets", "offline"),
    ("train", "cli"),
    # checks keeps a passing piece in the workbench, which re-checks pieces through checks:
    # both import the other inside a function, on purpose (see checks/_core.py).
    ("checks", "workbench"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(gpt2course module imported, whether at runtime) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for b in node.body for n in ast.walk(b)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for n in names:
            if n.startswith("gpt2course"):
                out.append((n, id(node) not in type_only))
    return out


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
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        me = _module_name(path)
        deps = graph.setdefault(me, set())
        for name, runtime in _imports(path):
            target = _real_module(name)
            if runtime and target and target != me and not me.startswith(target + "."):
                deps.add(target)
    return graph


def test_every_module_has_a_layer():
    tops = {_top(_module_name(p)) for p in PKG.rglob("*.py")}
    assert tops <= set(LAYER_OF), f"add {sorted(tops - set(LAYER_OF))} to LAYER_OF"


def test_imports_point_down():
    upward = []
    for me, deps in _graph().items():
        for dep in deps:
            a, b = _top(me), _top(dep)
            if (a, b) in SHIMS or a == b:
                continue
            if LAYERS[LAYER_OF[b]] > LAYERS[LAYER_OF[a]]:
                upward.append(f"{me} ({LAYER_OF[a]}) imports {dep} ({LAYER_OF[b]})")
    assert not upward, "imports that point up the layer table:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = {
        m: {d for d in deps if (_top(m), _top(d)) not in SHIMS} for m, deps in _graph().items()
    }
    # A package's __init__ importing its own submodules is how re-exports work, not a cycle.
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not d.startswith(m + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if seen.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
