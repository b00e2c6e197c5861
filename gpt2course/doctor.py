"""``python -m gpt2course doctor``: one screen that says what works and how to fix what doesn't."""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finding:
    what: str
    ok: bool
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return getattr(mod, "__version__", "installed")


def _package(module: str, fix: str, version_ok=lambda v: True) -> Finding:
    v = _version(module)
    return Finding(module, v is not None and version_ok(v), v or "not importable", fix)


def _widgets_ok(v: str) -> bool:
    """ipywidgets 7.7 or newer, before 9 (a version it does not say is taken as fine)."""
    m = re.match(r"(\d+)\.(\d+)", v)
    return v == "installed" or bool(m) and (7, 7) <= (int(m[1]), int(m[2])) < (9, 0)


def _device() -> Finding:
    """The device and dtype the course will pick."""
    import torch

    from .device import has_native_bf16, in_colab, pick_device, pick_dtype

    try:
        dev = pick_device()
        dtype = str(pick_dtype(dev)).removeprefix("torch.")
        name, note = dev.type, ""
        if dev.type == "cuda":
            name = f"cuda ({torch.cuda.get_device_name(dev)})"
            note = "" if has_native_bf16(dev) else " (no native bf16: fp16 is used)"
        elif dev.type == "cpu":
            note = " (no GPU: the course runs on the CPU, slower in parts 6-8)"
        where = " in Colab" if in_colab() else ""
        return Finding("device", True, f"{name}{where}, dtype {dtype}{note}")
    except Exception as e:  # a broken CUDA install should not hide the rest of the report
        return Finding(
            "device", False, f"{type(e).__name__}: {e}", "reinstall torch for your machine"
        )


def diagnose() -> list[Finding]:
    """Check Python, the packages, the device and dtype, and every asset."""
    from . import assets

    py_fix = "install Python 3.10 or newer (Colab and conda have it)"
    out = [Finding("python", sys.version_info >= (3, 10), platform.python_version(), py_fix)]
    out.append(
        _package(
            "torch",
            "pip install torch  (on a CPU-only machine: pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu)",
        )
    )
    if out[-1].ok:
        out.append(_device())
    out.append(_package("ipywidgets", 'pip install "ipywidgets>=7.7,<9"', _widgets_ok))
    out.append(tiktoken := _package("tiktoken", "pip install tiktoken"))
    for name in assets.ASSETS:
        p = assets.path_of(name)
        if not p.exists():
            fix = "python -m gpt2course assets fetch  (no network: assets seed --from DIR)"
            out.append(Finding(f"asset {name}", False, f"missing from {assets.cache_dir()}", fix))
        else:
            ok = assets.is_present(name)
            detail = "ok" if ok else "corrupt (wrong sha256)"
            fix = f"delete {p} and run python -m gpt2course assets fetch"
            out.append(Finding(f"asset {name}", ok, detail, fix))
    if tiktoken.ok and all(assets.is_present(n) for n in assets.TIKTOKEN_FILES):
        try:
            ok = assets.tiktoken_gpt2().encode("hello world") == [31373, 995]
            detail = "ready" if ok else "gives wrong ids"
        except Exception as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        fix = "python -m gpt2course assets seed --from DIR"
        out.append(Finding("tiktoken gpt2 offline", ok, detail, fix))
    out.append(_workbench())
    return out


def _workbench() -> Finding:
    """Where the learner's passing pieces are kept, and which pieces are theirs."""
    try:  # imported here: it loads the checks, which need the torch checked above
        from . import workbench
    except ImportError as e:
        return Finding("workbench", True, f"not looked at: {e}")
    where = workbench.folder()
    beside = Path.cwd() / "notebooks" / where.name  # run from the repository's root
    if not where.is_dir() and "GPT2COURSE_WORKBENCH" not in os.environ and beside.is_dir():
        where = beside
    yours = [name for name in workbench.PIECES if (where / f"{name}.py").is_file()]
    if not yours:
        detail = f"{where}: none of yours yet (a passing check keeps its piece here)"
    else:
        detail = f"{where}: yours {len(yours)} of {len(workbench.PIECES)}: {', '.join(yours)}"
    return Finding("workbench", True, detail)


def report(findings: list[Finding]) -> str:
    """The findings as a short text, one line each, with the fix under each problem."""
    lines = []
    for f in findings:
        lines.append(f"{'ok ' if f.ok else 'BAD'}  {f.what:<26} {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"     fix: {f.fix}")
    bad = sum(not f.ok for f in findings)
    lines.append(
        "all good: start with `jupyter lab notebooks/`"
        if not bad
        else f"{bad} problem(s): see the fix lines above"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 1 when anything needs fixing."""
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: python -m gpt2course doctor\nChecks Python, packages, device and assets, and says where your workbench is."
        )
        return 0
    if argv:
        print(
            f"error: doctor takes no arguments, got {' '.join(argv)!r}; run `python -m gpt2course doctor`",
            file=sys.stderr,
        )
        return 2
    findings = diagnose()
    print(report(findings))
    return 0 if all(f.ok for f in findings) else 1
