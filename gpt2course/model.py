"""GPT-2 in one readable file. Module names follow Hugging Face's GPT-2 checkpoint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import CausalSelfAttention

# The four published GPT-2 sizes.
_SIZES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are GPT-2 small's."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    dropout: float = 0.0
    bias: bool = True
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def from_name(cls, name: str, **overrides) -> GPTConfig:
        """The config of a published GPT-2 size: gpt2, gpt2-medium, gpt2-large or gpt2-xl."""
        key = name.removeprefix("openai-community/")
        if key not in _SIZES:
            raise ValueError(f"unknown model name {name!r}; choose one of {', '.join(_SIZES)}")
        return cls(**{**_SIZES[key], **overrides})

    def to_dict(self) -> dict:
        """A plain dict, for JSON."""
        return asdict(self)


class NewGELU(nn.Module):
    """GELU in the tanh form GPT-2 was trained with (not the exact erf form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = NewGELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None, return_weights: bool = False):
        """Returns ``(x, (k, v))``, plus the attention weights when asked."""
        out = self.attn(self.ln_1(x), kv_cache=kv_cache, return_weights=return_weights)
        x = x + out[0]
        x = x + self.mlp(self.ln_2(x))
        return (x, *out[1:])


class GPT(nn.Module):
    """GPT-2: token and position embeddings, ``n_layer`` blocks, a final LayerNorm, and a
    language-model head tied to the token embedding."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer) at init.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; tied weights count once. ``non_embedding`` leaves out ``wpe``."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: list | None = None,
        return_cache: bool = False,
        return_weights: bool = False,
    ):
        """Logits (B, T, vocab) for token ids ``idx`` (B, T); with ``targets`` also the loss.

        Returns ``logits`` or ``(logits, loss)``. With ``return_cache`` the per-layer keys
        and values are appended; with ``return_weights`` the per-layer attention weights.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        past = 0 if kv_cache is None else kv_cache[0][0].size(2)
        if past + T > self.config.n_positions:
            raise ValueError(
                f"sequence of {past + T} tokens is longer than the model's context of "
                f"{self.config.n_positions} positions; crop the input to its last "
                f"{self.config.n_positions} tokens (generate() does this for you)"
            )
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        new_cache, all_weights = [], []
        for i, block in enumerate(self.h):
            out = block(x, kv_cache=None if kv_cache is None else kv_cache[i], return_weights=return_weights)
            x = out[0]
            new_cache.append(out[1])
            if return_weights:
                all_weights.append(out[2])
        x = self.ln_f(x)
        logits = self.lm_head(x)  # (B, T, vocab)
        result = [logits]
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
            result.append(loss)
        if return_cache:
            result.append(new_cache)
        if return_weights:
            result.append(all_weights)
        return result[0] if len(result) == 1 else tuple(result)
