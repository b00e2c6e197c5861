"""Small experiments the notebooks run and the tests check, so both use the same code.

``residual_gradients`` (part 4): how much gradient reaches each layer of a deep stack of
MLP sublayers with pre-LN residuals (GPT-2), post-LN residuals (the original Transformer)
or no residuals, at GPT-2's initialisation, for a loss that depends on the input.

``shakespeare_base`` (part 9): a small byte-level GPT pretrained on Tiny Shakespeare for a
few hundred steps, a base that already knows some English to instruction-tune;
``mistake_pairs`` and ``preference_rate``: preference pairs from the model's own wrong
answers, and how often it now prefers the right one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import GPT, MLP, GPTConfig

__all__ = [
    "RESIDUAL_SETTINGS",
    "GradientProfile",
    "residual_gradients",
    "shakespeare_base",
    "mistake_pairs",
    "preference_rate",
]

RESIDUAL_SETTINGS = ("pre-LN", "post-LN", "no residual")


@dataclass(frozen=True)
class GradientProfile:
    """Gradient norms of one deep stack: per sublayer's parameters, and at the input."""

    setting: str
    layer_grad_norms: list[float]  # index 0 is the sublayer nearest the input
    input_grad_norm: float


def _gpt2_init(sublayer: nn.Module, depth: int) -> None:
    # GPT-2's initialisation (what our GPT applies): N(0, 0.02) weights, zero biases, and
    # the projections back into the stream scaled by 1/sqrt(2 * layers).
    for name, module in sublayer.named_modules():
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * depth) if name.endswith("c_proj") else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def residual_gradients(
    setting: str,
    depth: int = 48,
    width: int = 64,
    seed: int = 0,
    make_sublayer: Callable[[GPTConfig], nn.Module] | None = None,
) -> GradientProfile:
    """Backpropagate a next-token-style loss through ``depth`` MLP sublayers in one setting.

    ``setting`` is one of ``RESIDUAL_SETTINGS``. The loss is the cross-entropy of a fixed
    random read-out of the final (normalised) stream against random targets, so it depends
    on the input. ``make_sublayer(config)`` builds each sublayer (default: the package's MLP).
    """
    if setting not in RESIDUAL_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose from {', '.join(RESIDUAL_SETTINGS)}")
    if depth < 1 or width < 4:
        raise ValueError(f"need depth >= 1 and width >= 4, got depth={depth}, width={width}")
    make_sublayer = make_sublayer or MLP
    config = GPTConfig(n_embd=width, n_head=1, n_layer=depth, n_positions=8, vocab_size=100)
    torch.manual_seed(seed)
    sublayers = [make_sublayer(config) for _ in range(depth)]
    for sublayer in sublayers:
        _gpt2_init(sublayer, depth)
    norms = [nn.LayerNorm(width) for _ in range(depth)]
    ln_f = nn.LayerNorm(width)
    read_out = torch.randn(width, config.vocab_size) / math.sqrt(width)
    x = torch.randn(4, 8, width, requires_grad=True)
    targets = torch.randint(config.vocab_size, (4, 8))

    h = x
    for sublayer, ln in zip(sublayers, norms, strict=True):
        if setting == "pre-LN":
            h = h + sublayer(ln(h))  # GPT-2
        elif setting == "post-LN":
            h = ln(h + sublayer(h))  # the original Transformer
        else:
            h = sublayer(ln(h))
    # Post-LN's stream is already normalised; the other two need GPT-2's ln_f.
    out = h if setting == "post-LN" else ln_f(h)
    loss = F.cross_entropy((out @ read_out).flatten(0, 1), targets.flatten())
    loss.backward()

    layer_norms = [
        torch.cat([p.grad.flatten() for p in s.parameters()]).norm().item() for s in sublayers
    ]
    return GradientProfile(setting, layer_norms, x.grad.norm().item())


def shakespeare_base(
    n_layer: int = 2,
    n_embd: int = 64,
    steps: int = 300,
    block_size: int = 128,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> GPT:
    """A byte-level GPT pretrained on Tiny Shakespeare for ``steps`` steps (part 6's recipe)."""
    from .train import RandomBatches, TrainConfig, load_text, train

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    ids = torch.tensor(list(load_text("shakespeare").encode("utf-8")))
    torch.manual_seed(seed)
    model = GPT(
        GPTConfig(vocab_size=256, n_positions=block_size, n_layer=n_layer, n_head=4, n_embd=n_embd)
    )
    train(
        model,
        RandomBatches(ids, batch_size, block_size, seed=seed),
        None,
        TrainConfig(
            max_steps=steps,
            learning_rate=2e-3,
            min_lr=2e-4,
            warmup_steps=min(50, steps // 5),
            device=str(device),
            progress=False,
        ),
    )
    return model


def mistake_pairs(model: torch.nn.Module, examples, tokenizer) -> list:
    """Preference pairs from the model's own mistakes: the right answer over its greedy one."""
    from .instruct import greedy_answers
    from .preference import PreferencePair

    answers = greedy_answers(model, [e.instruction for e in examples], tokenizer, 12)
    return [
        PreferencePair(e.instruction, e.response, a)
        for e, a in zip(examples, answers, strict=True)
        if a.strip() != e.response.strip()
    ]


@torch.no_grad()
def preference_rate(model: torch.nn.Module, pairs, tokenizer) -> tuple[float, float]:
    """How often ``model`` gives the preferred answer more probability than the rejected
    one, and the mean log-probability of the preferred answers."""
    from .preference import sequence_logprobs

    if not pairs:
        raise ValueError("no preference pairs to measure; the model made no mistakes")
    inst = [p.instruction for p in pairs]
    chosen = sequence_logprobs(model, inst, [p.chosen for p in pairs], tokenizer)
    rejected = sequence_logprobs(model, inst, [p.rejected for p in pairs], tokenizer)
    return (chosen > rejected).float().mean().item(), chosen.mean().item()
