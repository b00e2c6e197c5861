"""GPT-2 in one readable file. Module names follow Hugging Face's GPT-2 checkpoint.

    idx (B, T) -> wte + wpe -> n_layer x Block -> ln_f -> lm_head (tied to wte) -> logits (B, T, vocab)

Each Block is pre-LN: ``x = x + attn(ln_1(x))``, then ``x = x + mlp(ln_2(x))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import CausalSelfAttention
from .config import MODEL_NAMES, GPTConfig  # noqa: F401  (re-exported: notebooks import them from here)

# One (keys, values) pair per layer, each (B, n_head, T_past, head_dim).
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class _SigmoidGELU(torch.autograd.Function):
    """GELU's tanh form written as x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3).

    0.5 (1 + tanh(z)) == sigmoid(2z), so this is the same curve. On the CPU torch's
    vectorised tanh is several times slower than its sigmoid, and the fused tanh-GELU kernels
    cost ~4 ms per forward and backward of a 1M-element activation: the whole gap between our
    training step and nanoGPT's (which uses the erf form) in docs/benchmarks.md.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        two_k = torch.tensor(2 * _GELU_K, dtype=x.dtype)
        s = torch.addcmul(two_k, x, x, value=2 * _GELU_K * _GELU_C).mul_(x).sigmoid_()
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, s = ctx.saved_tensors
        # d/dx x s(2z) = s + x s (1 - s) dz2/dx, with dz2/dx = 2k (1 + 3c x^2)
        two_k = torch.tensor(2 * _GELU_K, dtype=x.dtype)
        d = torch.addcmul(two_k, x, x, value=6 * _GELU_K * _GELU_C).mul_(x)
        d.mul_(torch.addcmul(s, s, s, value=-1.0))  # s (1 - s), in one kernel
        return d.add_(s).mul_(grad)


class NewGELU(nn.Module):
    """GELU in the tanh form GPT-2 was trained with (not the exact erf form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The checkpoint's weights were trained through this curve; the erf form differs by
        # up to ~1e-3 per activation, enough to drift logits after 12 layers.
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.compiler.is_compiling()
        ):
            return _SigmoidGELU.apply(x)  # the same curve, faster on the CPU (see there)
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

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_weights: bool = False,
    ) -> tuple:
        """(B, T, C) -> ``(x, (k, v))``, plus the attention weights when asked."""
        # The residual stream x is never normalised in place: each sublayer reads a
        # normalised copy and adds its result back, so gradients flow straight through.
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
        # Weight tying, as in GPT-2: reading a token in and writing it out share one matrix.
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer) at init, so the
        # residual stream's variance does not grow with depth.
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
        kv_cache: KVCache | None = None,
        return_cache: bool = False,
        return_weights: bool = False,
        last_only: bool = False,
        return_hidden: bool = False,
    ):
        """Logits (B, T, vocab) for token ids ``idx`` (B, T); with ``targets`` also the loss.

        Returns ``logits`` or ``(logits, loss)``. With ``return_cache`` the per-layer keys
        and values are appended; with ``return_weights`` the per-layer attention weights.
        ``kv_cache`` holds the keys and values of the positions before ``idx``;
        ``last_only`` computes the logits of the last position only (B, 1, vocab), which is
        all that generation needs; ``return_hidden`` returns the final hidden states (after
        ``ln_f``, shape (B, T, C)) in place of the logits, for a caller that applies the head.
        """
        self._check_input(idx, targets)
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
            layer_cache = None if kv_cache is None else kv_cache[i]
            out = block(x, kv_cache=layer_cache, return_weights=return_weights)
            x = out[0]  # (B, T, C)
            new_cache.append(out[1])
            if return_weights:
                all_weights.append(out[2])
        if last_only:
            x = x[:, -1:]  # (B, 1, C): the vocab projection is the costliest matmul
        x = self.ln_f(x)
        logits = x if return_hidden else self.lm_head(x)  # (B, T, vocab)
        result = [logits]
        if targets is not None:
            # The loss in fp32 even under autocast: log-softmax over 50k logits loses
            # precision in half.
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100
            )
            result.append(loss)
        if return_cache:
            result.append(new_cache)
        if return_weights:
            result.append(all_weights)
        return result[0] if len(result) == 1 else tuple(result)

    def _check_input(self, idx: torch.Tensor, targets: torch.Tensor | None) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(
                f"idx must be a (batch, time) tensor of token ids, got {shape}; "
                "for one sequence use idx[None] (or torch.tensor([ids]))"
            )
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must hold integer token ids (torch.long), got {idx.dtype}")
        if idx.size(1) == 0:
            raise ValueError("idx is empty: give at least one token (e.g. <|endoftext|>)")
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(
                f"targets must have the shape of idx {tuple(idx.shape)}, got "
                f"{tuple(targets.shape)}; targets[b, t] is the token that follows idx[b, t]"
            )
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
