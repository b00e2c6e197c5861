"""Attention from scratch, and GPT-2's causal multi-head self-attention."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from .model import GPTConfig


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (T, T) mask, True where position i may attend to position j (j <= i)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """softmax(q k^T / sqrt(d)) v, written out; ``mask`` is boolean, True means "may attend"."""
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # Subtracting the row max keeps exp() in range in fp16/bf16; a fully masked row
    # (all -inf) would give NaN, so it gets weights of zero instead.
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=-1, keepdim=True)
    weights = e / torch.where(denom == 0, torch.ones_like(denom), denom)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


class CausalSelfAttention(nn.Module):
    """GPT-2's attention: one fused ``c_attn`` projection to q, k, v, then heads, then ``c_proj``."""

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

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, n_head, T, head_dim)."""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_head, T, head_dim) -> (B, T, C)."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, H * D)

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_weights: bool = False,
    ):
        """Attend over ``x`` (B, T, C); with ``kv_cache`` the keys and values of earlier
        positions are prepended. Returns ``(y, (k, v))`` or ``(y, (k, v), weights)``."""
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, nh, T, hd)
        if kv_cache is not None:
            k = torch.cat([kv_cache[0], k], dim=2)
            v = torch.cat([kv_cache[1], v], dim=2)
        T_q, T_k = q.size(2), k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        if return_weights:
            # The explicit path: the same maths, and the weights for the attention viewer.
            mask = causal_mask(T_k, device=x.device)[T_k - T_q :]
            y, weights = scaled_dot_product_attention(
                q, k, v, mask=mask, dropout_p=dropout_p, return_weights=True
            )
        else:
            weights = None
            if T_q == T_k:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:
                # Queries are the last T_q positions: each sees every key up to itself.
                mask = causal_mask(T_k, device=x.device)[T_k - T_q :]
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = self.resid_dropout(self.c_proj(self.merge_heads(y)))  # (B, T, C)
        if return_weights:
            return y, (k, v), weights
        return y, (k, v)
