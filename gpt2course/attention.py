"""Attention from scratch, and GPT-2's causal multi-head self-attention.

Masks follow torch's convention: a boolean mask, ``True`` where a query may attend to a key.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (T, T) mask, True where position i may attend to position j (j <= i)."""
    if T < 1:
        raise ValueError(f"the mask needs at least one position, got T={T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _check_qkv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> None:
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError("q, k and v need at least 2 dimensions: (..., T, head_dim)")
    if q.size(-1) != k.size(-1):
        raise ValueError(
            f"queries and keys must have the same last dimension to be dotted together: "
            f"q has {q.size(-1)}, k has {k.size(-1)}"
        )
    if k.size(-2) != v.size(-2):
        raise ValueError(
            f"there must be one value per key: k has {k.size(-2)} positions, v has {v.size(-2)}"
        )
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be boolean (True = may attend), got {mask.dtype}; "
            "for a 0/1 tensor pass mask.bool()"
        )
    want = (*q.shape[:-1], k.size(-2))
    try:
        torch.broadcast_shapes(mask.shape, want)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{want} (..., T_query, T_key)"
        ) from None


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, written out; ``mask`` is boolean, True means "may attend".

    Shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v); with
    ``return_weights`` also the weights (..., T_q, T_k). A query that may attend to no key
    gets zero weights (and a zero output), as torch's own kernel does, not NaN.
    """
    _check_qkv(q, k, v, mask)
    # Scaling q before the product, not the scores after, keeps q @ k^T from overflowing
    # in fp16 when the raw dot products are large.
    q = q * (1.0 / math.sqrt(q.size(-1)))
    scores = q @ k.transpose(-2, -1)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # exp(x - max) == exp(x) / exp(max): the same softmax, but every exponent is <= 0, so
    # nothing overflows in fp16/bf16. A fully masked row has max -inf; using 0 there makes
    # every exp() zero instead of NaN (-inf - -inf).
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = row_max.masked_fill(torch.isinf(row_max), 0.0)
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=-1, keepdim=True)
    weights = e / denom.masked_fill(denom == 0, 1.0)  # (..., T_q, T_k)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, C // n_head): each head gets its own slice of channels."""
    B, T, C = x.shape
    if C % n_head != 0:
        raise ValueError(f"{C} channels do not split evenly into {n_head} heads")
    # Channels are grouped by head (head 0 owns channels 0..hd-1), so the head axis is
    # carved out of C first and only then moved in front of T.
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_dim) -> (B, T, n_head * head_dim), undoing ``split_heads``."""
    B, H, T, D = x.shape
    # Move T back next to B before flattening, or the view would interleave positions.
    return x.transpose(1, 2).contiguous().view(B, T, H * D)


class CausalSelfAttention(nn.Module):
    """GPT-2's attention: one fused ``c_attn`` projection to q, k, v, then heads, then ``c_proj``.

    It runs torch's fused kernel, which computes what ``scaled_dot_product_attention`` above
    writes out step by step (the attention viewer recomputes the weights that way).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(
                f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})"
            )
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C). With a layer's ``cache``, the queries also see every earlier
        position's keys and values, and the new keys and values are added to it."""
        if x.dim() != 3 or x.size(-1) != self.n_embd:
            raise ValueError(f"x must be (batch, time, {self.n_embd}), got shape {tuple(x.shape)}")
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        dropout_p = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            k, v, mask = cache.update(k, v)  # (B, nh, T_past + T, hd); mask: (T, T_past + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return self.resid_dropout(self.c_proj(merge_heads(y)))  # (B, T, C)
