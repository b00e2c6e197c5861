"""How well a model predicts text: perplexity over text longer than its context."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def perplexity(model: nn.Module, ids: list[int], window: int = 1024) -> float:
    """exp(mean next-token cross-entropy) over ``ids``, in half-overlapping windows.

    Each window after the first scores only its second half, so that every token is scored
    once and, past the first window, with at least ``window // 2`` tokens of context.
    """
    if len(ids) < 2:
        raise ValueError(f"perplexity needs at least 2 ids (one prediction), got {len(ids)}")
    window = min(window, model.config.context_length)
    stride = window // 2
    dev = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, max(1, len(ids) - 1), stride):
        chunk = torch.tensor([ids[start : start + window + 1]], device=dev)
        x, y = chunk[:, :-1], chunk[:, 1:].clone()  # (1, T), targets shifted by one
        if start > 0:
            y[:, : window - stride] = -100  # scored already, by the previous window
        loss = F.cross_entropy(model(x)[0].float(), y[0], ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((y != -100).sum())
        if start + window + 1 >= len(ids):
            break
    return math.exp(total / count)
