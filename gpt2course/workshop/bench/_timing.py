"""What the benchmarks share: their argument parser, wall-clock seconds that wait for the
GPU, the machine's name, and the transformers greedy decoding they compare against."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def parser(name: str, description: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``python -m gpt2course bench NAME``."""
    return argparse.ArgumentParser(
        prog=f"python -m gpt2course bench {name}", description=description
    )


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock reading covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], object], device: torch.device, reset_peak: bool = False
) -> tuple[float, object]:
    """(seconds, result) of ``fn()``; ``reset_peak`` starts CUDA's peak-memory count afresh."""
    if reset_peak and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def best_of(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` after a warm-up call, in seconds."""
    fn()
    return min(timed(fn, device)[0] for _ in range(repeat))


def device_label(device: torch.device) -> str:
    """The GPU's name, or the CPU and its torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} thread(s)"


def hf_greedy(hf: torch.nn.Module, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Exactly ``n`` greedy tokens from a transformers model: the ids (B, T + n)."""
    greedy = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        return hf.generate(idx, attention_mask=torch.ones_like(idx), **greedy)
