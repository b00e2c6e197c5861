"""GPT-2 in one readable file. Module names follow Hugging Face's GPT-2 checkpoint.

    idx (B, T) -> wte + wpe -> n_layer x Block -> ln_f -> lm_head (tied to wte) -> logits (B, T, vocab)

Each Block is pre-LN: ``x = x + attn(ln_1(x))``, then ``x = x + mlp(ln_2(x))``. Every module
maps a tensor to a tensor, as the exercises do; decoding passes a ``KVCache`` in, which the
attention layers fill in place (``cache.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import CausalSelfAttention
from .config import MODEL_NAMES, GPTConfig  # noqa: F401  (notebooks import them from here)

if TYPE_CHECKING:
    from .cache import CachedLayer, KVCache


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token ``logits`` (B, T, V) against ``targets`` (B, T).

    Targets of -100 are not scored. In fp32 even under autocast: a log-softmax over 50k
    logits loses precision in half.
    """
    # cross_entropy wants classes in dim 1, so flatten (B, T) into one batch of B*T predictions.
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class NewGELU(nn.Module):
    """GELU in the tanh form GPT-2 was trained with (not the exact erf form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The checkpoint's weights were trained through this curve; the erf form differs by
        # up to ~1e-3 per activation, enough to drift logits after 12 layers.
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
        """(B, T, C) -> (B, T, C)."""
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))  # (B, T, 4C) inside


class Block(nn.Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: CachedLayer | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        # The residual stream x is never normalised in place: each sublayer reads a
        # normalised copy and adds its result back, so gradients flow straight through.
        h = self.ln_1(x)
        x = x + (self.attn(h) if cache is None else self.attn(h, cache))
        x = x + self.mlp(self.ln_2(x))
        return x


def check_id_dtype(idx: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``idx`` holds integer token ids: the one check ``GPT.forward``,
    ``generate`` and ``FastGenerator`` share, so they refuse a float prompt in the same words."""
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"idx holds {str(idx.dtype).removeprefix('torch.')} values; token ids are integers "
            "(torch.long): a float would be truncated to some other token. Build them from the "
            "tokenizer's ids, e.g. torch.tensor([ids])"
        )


class GPT(nn.Module):
    """GPT-2: token and position embeddings, ``n_layer`` blocks, a final LayerNorm, and a
    language-model head tied to the token embedding."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_length, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying, as in GPT-2: reading a token in and writing it out share one matrix.
        self.lm_head.weight = self.wte.weight
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2's initialisation: weights from N(0, 0.02), biases 0 (LayerNorms keep 1 and 0)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer) at init, so the
        # residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; tied weights count once. ``non_embedding`` leaves out ``wpe``."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids ``idx`` (B, T).

        With a ``cache`` holding the keys and values of earlier positions, ``idx`` holds only
        the tokens after them, and their keys and values are added to it.
        """
        self._check_input(idx)
        T = idx.size(1)
        past = 0 if cache is None else len(cache)
        if past + T > self.config.context_length:
            raise ValueError(
                f"sequence of {past + T} tokens is longer than the model's context of "
                f"{self.config.context_length} positions; crop the input to its last "
                f"{self.config.context_length} tokens (generate() does this for you)"
            )
        if cache is None:
            pos = torch.arange(T, device=idx.device)  # (T,)
        else:
            pos = cache.positions(T, idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.h):
            # An exercise's Block takes only x: pass a cache only when there is one.
            x = block(x) if cache is None else block(x, cache.layers[i])  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)

    def _check_input(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(
                f"idx must be a (batch, time) tensor of token ids, got {shape}; "
                "for one sequence use idx[None] (or torch.tensor([ids]))"
            )
        check_id_dtype(idx)
        if idx.size(1) == 0:
            raise ValueError("idx is empty: give at least one token (e.g. <|endoftext|>)")
        # A bad id on a GPU is a cryptic device-side assert; catch it here, on the CPU only
        # (checking a CUDA tensor would stall the GPU on every step).
        if idx.device.type == "cpu" and not torch.compiler.is_compiling():
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(
                    f"token ids must be in [0, {self.config.vocab_size}), got ids from {lo} to "
                    f"{hi}; was the text encoded with another tokenizer?"
                )


def count_parameters(config: GPTConfig | str) -> int:
    """Parameters of a GPT of this shape (a config or a name like "gpt2"), without allocating it."""
    if isinstance(config, str):
        config = GPTConfig.from_name(config)
    with torch.device("meta"):  # shapes only: gpt2-xl's 1.5B parameters cost no memory
        return GPT(config).num_params()
