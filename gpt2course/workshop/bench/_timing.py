"""Timing shared by the benchmarks: wall-clock seconds that wait for the GPU, and the
transformers greedy decoding they compare against."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["sync", "timed", "hf_greedy"]


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock reading covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device, reset_peak: bool = False
) -> tuple[float, torch.Tensor]:
    """(seconds, result) of ``fn()``; ``reset_peak`` starts CUDA's peak-memory count afresh."""
    if reset_peak and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def hf_greedy(hf: torch.nn.Module, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Exactly ``n`` greedy tokens from a transformers model: the ids (B, T + n)."""
    with torch.inference_mode():
        return hf.generate(
            idx,
            attention_mask=torch.ones_like(idx),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
        )
