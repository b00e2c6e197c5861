"""``python -m gpt2course doctor``: one screen that says what works and how to fix what doesn't."""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass


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


def diagnose() -> list[Finding]:
    """Check Python, the packages, the device and dtype, and every asset."""
    out: list[Finding] = []
    py = platform.python_version()
    out.append(
        Finding(
            "python",
            sys.version_info >= (3, 10),
            py,
            "install Python 3.10 or newer (Colab and conda have it)",
        )
    )

    torch_v = _version("torch")
    out.append(
        Finding(
            "torch",
            torch_v is not None,
            torch_v or "not importable",
            "pip install torch  (on a CPU-only machine: pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu)",
        )
    )
    if torch_v is not None:
        from .device import has_native_bf16, in_colab, pick_device, pick_dtype

        try:
            dev = pick_device()
            dtype = pick_dtype(dev)
            name = dev.type
            if dev.type == "cuda":
                import torch

                name = f"cuda ({torch.cuda.get_device_name(dev)})"
                note = "" if has_native_bf16(dev) else " (no native bf16: fp16 is used)"
            else:
                note = (
                    " (no GPU: the course runs on the CPU, slower in parts 6-8)"
                    if dev.type == "cpu"
                    else ""
                )
            where = " in Colab" if in_colab() else ""
            out.append(
                Finding(
                    "device",
                    True,
                    f"{name}{where}, dtype {str(dtype).removeprefix('torch.')}{note}",
                )
            )
        except Exception as e:  # a broken CUDA install should not hide the rest of the report
            out.append(
                Finding(
                    "device", False, f"{type(e).__name__}: {e}", "reinstall torch for your machine"
                )
            )

    widgets_v = _version("ipywidgets")
    ok = widgets_v is not None and (
        widgets_v == "installed" or widgets_v.split(".")[0] in ("7", "8")
    )
    if ok and widgets_v and widgets_v[0] == "7":
        ok = tuple(int(x) for x in widgets_v.split(".")[:2]) >= (7, 7)
    out.append(
        Finding(
            "ipywidgets",
            ok,
            widgets_v or "not importable",
            'pip install "ipywidgets>=7.7,<9"',
        )
    )
    tk_v = _version("tiktoken")
    out.append(
        Finding("tiktoken", tk_v is not None, tk_v or "not importable", "pip install tiktoken")
    )

    from . import assets

    for name, a in assets.ASSETS.items():
        p = assets.path_of(name)
        if not p.exists():
            out.append(
                Finding(
                    f"asset {name}",
                    False,
                    f"missing from {assets.cache_dir()}",
                    "python -m gpt2course assets fetch  (no network: assets seed --from DIR)",
                )
            )
        elif assets.sha256_of(p) != a.sha256:
            out.append(
                Finding(
                    f"asset {name}",
                    False,
                    "corrupt (wrong sha256)",
                    f"delete {p} and run python -m gpt2course assets fetch",
                )
            )
        else:
            out.append(Finding(f"asset {name}", True, "ok"))

    if tk_v is not None and all(assets.is_present(n) for n in assets.TIKTOKEN_FILES):
        try:
            enc = assets.tiktoken_gpt2()
            ok = enc.encode("hello world") == [31373, 995]
            out.append(
                Finding(
                    "tiktoken gpt2 offline",
                    ok,
                    "ready" if ok else "gives wrong ids",
                    "python -m gpt2course assets seed --from DIR",
                )
            )
        except Exception as e:
            out.append(
                Finding(
                    "tiktoken gpt2 offline",
                    False,
                    f"{type(e).__name__}: {e}",
                    "python -m gpt2course assets seed --from DIR",
                )
            )
    return out


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
        print("usage: python -m gpt2course doctor\nChecks Python, packages, device and assets.")
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
