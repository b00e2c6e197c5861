"""Check for part 5: the whole GPT, assembled from your blocks."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .. import model as reference
from ._core import CheckFailure, compare_tensors, require_same_device, run_check, say
from .transformer import _check_norms, _modules

__all__ = ["check_gpt", "reference_gpt"]

_NAMES = ("wte", "wpe", "h", "ln_f", "lm_head")


def _config(n_layer: int = 2) -> reference.GPTConfig:
    return reference.GPTConfig(
        vocab_size=61, context_length=64, n_embd=48, n_layer=n_layer, n_head=4
    )


def reference_gpt(block: type | None = None):
    """The reference GPT (``GPT(config)``), built from ``block`` (your Block) when given."""
    if block is None:
        return reference.GPT

    def GPT(config: reference.GPTConfig) -> reference.GPT:
        """The reference GPT with your blocks: embeddings, blocks, ln_f, tied head."""
        model = reference.GPT(config)
        model.h = nn.ModuleList([block(config) for _ in range(config.n_layer)])
        model.init_weights()  # GPT-2's initialisation, your blocks included
        return model

    return GPT


def _check_layout(m: nn.Module, config: reference.GPTConfig) -> None:
    """GPT-2's layout: the blocks in an nn.ModuleList, the head tied to wte, no bias."""
    if not isinstance(m.h, nn.ModuleList) or len(m.h) != config.n_layer:
        raise CheckFailure(
            f"self.h should be an nn.ModuleList of config.n_layer ({config.n_layer}) blocks, got "
            f"{type(m.h).__name__}{f' of {len(m.h)}' if hasattr(m.h, '__len__') else ''}: a plain "
            "list hides the blocks' parameters from the optimiser"
        )
    blocks = list(m.h)
    if len({id(b) for b in blocks}) < len(blocks):
        raise CheckFailure(
            say(
                (
                    "self.h holds the same Block several times ([Block(config)] * n_layer?), "
                    "so every layer shares one set of weights; each layer needs its own Block",
                    "multiplying a list repeats the one object in it; build a new Block for "
                    "each layer (a list comprehension calls Block(config) n_layer times)",
                )
            )
        )
    if m.lm_head.weight is not m.wte.weight:
        raise CheckFailure(
            say(
                (
                    "the head is not tied to the token embedding: GPT-2 uses one matrix for "
                    "both reading tokens in and scoring them out",
                    "after creating wte and lm_head, make lm_head's weight the very same "
                    "Parameter object as wte's (an assignment, not a copy)",
                )
            )
        )
    if getattr(m.lm_head, "bias", None) is not None:
        raise CheckFailure("lm_head has a bias; GPT-2's head has none (bias=False)")


def _check_init(cls: type) -> None:
    """GPT-2's initialisation: N(0, 0.02), zero biases, residual projections scaled down."""
    config = _config(n_layer=8)
    torch.manual_seed(0)
    m = cls(config)
    std = m.wte.weight.std().item()
    if not 0.015 < std < 0.025:
        raise CheckFailure(
            f"wte's weights have std {std:.3f}; GPT-2 draws embeddings and linear weights from "
            "N(0, 0.02) (PyTorch's default for nn.Embedding is N(0, 1))"
        )
    pos = m.wpe.weight.std().item()
    if not 0.015 < pos < 0.025:
        raise CheckFailure(
            f"wpe's weights have std {pos:.3f}; GPT-2 draws the position embeddings from "
            "N(0, 0.02) too (PyTorch's default for nn.Embedding is N(0, 1)): does your init "
            "reach the nn.Embedding layers, not only nn.Linear? (wte gets 0.02 through the "
            "tied head; wpe does not)"
        )
    norms = [(n, p) for n, p in m.named_parameters() if ".ln_" in f".{n}" or n.startswith("ln_")]
    for n, p in norms:
        want = 1.0 if n.endswith("weight") else 0.0
        if not torch.all(p == want):
            raise CheckFailure(
                f"{n} does not start at {want:g}: a LayerNorm starts as the identity (weight "
                "1, bias 0), and GPT-2's init leaves it so; initialise only the nn.Linear "
                "and nn.Embedding layers"
            )
    fc = m.h[0].mlp.c_fc.weight.std().item()
    if not 0.015 < fc < 0.025:
        raise CheckFailure(
            f"mlp.c_fc's weights have std {fc:.3f}; GPT-2 initialises every nn.Linear from "
            "N(0, 0.02) (apply an init function to every module)"
        )
    want = 0.02 / math.sqrt(2 * config.n_layer)
    got = m.h[0].mlp.c_proj.weight.std().item()
    if not 0.8 * want < got < 1.2 * want:
        raise CheckFailure(
            f"the residual projections (c_proj) have std {got:.4f}, expected about {want:.4f}: "
            "GPT-2 scales them by 1/sqrt(2 * n_layer), two per block, so the residual "
            "stream's variance does not grow with depth"
        )
    biases = [n for n, p in m.named_parameters() if n.endswith("c_fc.bias") and p.abs().max() > 0]
    if biases:
        raise CheckFailure(f"{biases[0]} is not zero at init; GPT-2 starts every bias at 0")
    if not torch.isfinite(torch.stack([p.sum() for p in m.parameters()])).all():
        raise CheckFailure("some parameters are not finite after init (torch.empty left as is?)")


def check_gpt(gpt_class: type, block: type | None = None, *, hint: int = 1) -> type:
    """Check a ``GPT(config)`` whose ``forward(idx)`` returns logits (B, T, vocab).

    ``block`` is the Block class the model is built from (yours); a wrong GPT falls back to
    the reference GPT built from that same block, so your block is kept.
    """
    Ref = reference_gpt(block)

    def test(cls: type) -> None:
        config = _config()
        ref, mine = _modules(Ref, cls, config, _NAMES, seed=1)
        _check_layout(mine, config)
        _check_norms(mine, config, ("ln_f",))
        # Extra buffers are fine (nanoGPT's attn.bias mask); parameters must be GPT-2's.
        want, theirs = ref.state_dict(), mine.state_dict()
        buffers = {n for n, _ in mine.named_buffers()}
        extra = [k for k in theirs if k not in want and k not in buffers]
        missing = [k for k in want if k not in theirs]
        misfit = [k for k in want if k in theirs and theirs[k].shape != want[k].shape]
        if extra or missing or misfit:
            problems = [f"no {', '.join(missing[:4])}"] if missing else []
            problems += [f"{', '.join(extra[:4])}, which GPT-2 has not"] if extra else []
            problems += [
                f"{k} of shape {tuple(theirs[k].shape)}, expected {tuple(want[k].shape)}"
                for k in misfit[:2]
            ]
            raise CheckFailure(
                "the model's parameters are not GPT-2's: it has " + "; ".join(problems)
            )
        mine.load_state_dict(want, strict=False)
        # Distinct tokens at distinct positions, batch of 3: position and order bugs show.
        idx = torch.randperm(config.vocab_size, generator=torch.Generator().manual_seed(2))
        idx = idx[: 3 * 10].reshape(3, 10)
        before = idx.clone()
        got = mine(idx)
        if not torch.equal(idx, before):
            raise CheckFailure("forward changed the token ids it was given (an in-place op?)")
        if isinstance(got, tuple):
            raise CheckFailure(
                f"forward returned a tuple of {len(got)}; return the logits tensor (B, T, vocab)"
            )
        if isinstance(got, torch.Tensor) and got.shape == (3, 10, config.n_embd):
            raise CheckFailure(
                f"forward returned shape {tuple(got.shape)}: the hidden states. Apply ln_f, "
                "then lm_head, to get one score per vocabulary token"
            )
        with torch.no_grad():
            x = ref.wte(idx)
            pos = ref.wpe(torch.arange(10))

            def run(h: torch.Tensor, blocks=ref.h, ln_f=True) -> torch.Tensor:
                for b in blocks:
                    h = b(h)
                return ref.lm_head(ref.ln_f(h) if ln_f else h)

            bugs = [
                (
                    (
                        "the position embeddings are missing: the blocks cannot tell the "
                        "order of the tokens",
                        "the first block's input is the sum of the token and the position "
                        "embeddings",
                    ),
                    run(x),
                ),
                (
                    (
                        "wpe is looked up with the token ids; it takes the positions",
                        "the positions of a (B, T) input are 0, 1, ..., T-1, on idx's device",
                    ),
                    run(x + ref.wpe(idx)),
                ),
                (
                    "ln_f is missing: normalise after the last block, before lm_head",
                    run(x + pos, ln_f=False),
                ),
                (
                    "only the last block's output is kept: chain them, x = block(x), over all of self.h",
                    run(x + pos, ref.h[-1:]),
                ),
                (
                    "the logits went through a softmax; return the raw scores (the loss and the "
                    "sampler apply their own softmax)",
                    torch.softmax(ref(idx), dim=-1),
                ),
            ]
            compare_tensors(got, ref(idx), what="logits", atol=1e-4, likely_bugs=bugs)
        one = mine(idx[:1, :1])
        if one.shape != (1, 1, config.vocab_size):
            raise CheckFailure(f"a single token gives logits of shape {tuple(one.shape)}")
        full = torch.randint(0, config.vocab_size, (1, config.context_length))
        compare_tensors(mine(full), ref(full), what="logits for a full context", atol=1e-4)
        require_same_device(mine, idx, name="idx")
        mine.train()
        mine.zero_grad()
        mine(idx).float().logsumexp(-1).mean().backward()
        if mine.wpe.weight.grad is None or mine.h[0].ln_1.weight.grad is None:
            raise CheckFailure(
                "no gradient reaches wpe or the blocks: is the graph cut (.detach(), .item())?"
            )
        _check_init(cls)

    return run_check("GPT", gpt_class, Ref, test, hint=hint)
