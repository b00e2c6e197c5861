"""The shape of a GPT, and the one table of GPT-2's published sizes.

Its own module so that ``attention`` (which ``model`` builds on) can take a ``GPTConfig``
without importing ``model``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The four published GPT-2 sizes.
SIZES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}
MODEL_NAMES = tuple(SIZES)


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are GPT-2 small's."""

    vocab_size: int = 50257
    context_length: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    dropout: float = 0.0
    bias: bool = True
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head dimensions"
            )
        for name in ("dropout", "layer_norm_epsilon"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"GPTConfig.{name} must be a number, got {value!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"GPTConfig.bias must be true or false, got {self.bias!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_name(cls, name: str, **overrides) -> GPTConfig:
        """The config of a published GPT-2 size: gpt2, gpt2-medium, gpt2-large or gpt2-xl."""
        key = name.removeprefix("openai-community/")
        if key not in SIZES:
            raise ValueError(f"unknown model name {name!r}; choose one of {', '.join(SIZES)}")
        return cls(**{**SIZES[key], **overrides})

    def to_dict(self) -> dict:
        """A plain dict, for JSON."""
        return asdict(self)
