"""Do the committed notebook outputs hold on another CPU? Run them under other kernels.

PyTorch picks its CPU kernels (DEFAULT, AVX2, AVX512) from the processor it runs on, and the
thread count changes how sums are split. Either can move the last bits of a float, so an
output that prints them passes on one machine and fails on the next. ``ATEN_CPU_CAPABILITY``
makes PyTorch use another processor's kernels on this one, which lets one machine stand in
for many: ``python -m gpt2course notebooks portability`` runs the strict notebook suite
(nbval, as the README's test command does) under each setting and says which ones fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from . import course

# A setting, one way a machine may run PyTorch: its kernels ("default", "avx2", "avx512":
# ATEN_CPU_CAPABILITY's values) and its thread count.
Setting = tuple[str, int]


def best_capability() -> str:
    """The kernels PyTorch picks on this machine when left alone (e.g. "avx512")."""
    import torch

    return torch.backends.cpu.get_cpu_capability().lower()


def cores_each(n: int) -> int:
    """This machine's cores (those this process may use) shared among ``n``: at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // n)


def parse_settings(text: str) -> list[Setting]:
    """``"default:1,avx2:2"`` -> settings; raises ValueError with the expected form."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        cap, _, threads = part.partition(":")
        if cap not in ("default", "avx2", "avx512") or not threads.isdigit() or int(threads) < 1:
            raise ValueError(
                f"bad setting {part!r}: write CAPABILITY:THREADS with CAPABILITY one of "
                "default, avx2, avx512 (for example default:1,avx2:2)"
            )
        out.append((cap, int(threads)))
    if not out:
        raise ValueError("no settings given; for example --settings default:1,avx2:2")
    return out


def run_setting(
    setting: Setting, paths: list[Path], timeout: float = 1800
) -> tuple[bool, float, str]:
    """Run the strict notebook suite under one setting: (passed, seconds, pytest's last line)."""
    root = course.repo_root()
    # The README's command runs one pytest-xdist worker per core; at N threads each, as many
    # workers as the cores hold N threads (more would wait on each other).
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0"]
    cmd += ["-n", str(cores_each(setting[1])), *(str(p.relative_to(root)) for p in paths)]
    n = str(setting[1])
    env = {**os.environ, "ATEN_CPU_CAPABILITY": setting[0], "GPT2COURSE_QUICK": "1"}
    env |= {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - t0, f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        failed = [line for line in lines if line.startswith("FAILED")]
        summary = "; ".join([summary, *failed[:10]])
    return proc.returncode == 0, seconds, summary


def main(settings: list[Setting] | None = None, slugs: list[str] | None = None) -> int:
    """Run every setting, print a line each as it finishes; 0 when all pass."""
    # By default plain, AVX2 and this machine's best kernels, each on one thread and on two.
    caps = dict.fromkeys(["default", "avx2", best_capability()])
    settings = settings or [(cap, n) for cap in caps for n in (1, 2)]
    # The learner and solution notebooks that nbval compares (all, or those named).
    todo = [course.find(s) for s in slugs] if slugs else course.NOTEBOOKS
    paths = [course.notebook_path(nb, v) for nb in todo for v in ("learner", "solutions")]
    print(f"{len(paths)} notebooks under nbval; this machine's best kernels: {best_capability()}")
    failures = 0
    for cap, threads in settings:
        ok, seconds, summary = run_setting((cap, threads), paths)
        failures += not ok
        what = f"ATEN_CPU_CAPABILITY={cap} OMP_NUM_THREADS={threads}"
        print(f"{'ok  ' if ok else 'FAIL'} {what}  {seconds:5.0f} s  {summary}", flush=True)
    if failures:
        print(
            f"{failures} of {len(settings)} settings failed: a committed output depends on the "
            "CPU. Print what the cell means to show (a rounded value, a comparison), rebuild the "
            "notebook with `python -m gpt2course notebooks build --execute NN`, and run this again."
        )
    return 1 if failures else 0
