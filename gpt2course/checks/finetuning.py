"""Checks for the fine-tuning exercises: the LoRA layer, freezing the base, merging."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import lora as reference
from ._core import CheckFailure, call, check, compare_tensors, compare_values

__all__ = ["check_lora_linear", "check_mark_only_lora_trainable", "check_merged_weight"]

# Square layers, so that a transposed matrix still has the right shape and its values
# (not a shape error) say what went wrong.
IN, OUT, RANK, ALPHA = 12, 12, 4, 8.0


def _fill(layer: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("weight", "bias", "lora_A", "lora_B"):
            p = getattr(layer, name, None)
            if p is not None:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@check("LoRALinear", reference.LoRALinear)
def check_lora_linear(cls):
    """Check a LoRA layer class built as ``cls(in_features, out_features, rank, alpha)``."""

    def build(seed: int, junk: float):
        # Freed memory of A's size, filled with junk: torch.empty then picks it up.
        filler = torch.full((RANK, IN), junk)
        del filler
        torch.manual_seed(seed)
        return cls(IN, OUT, RANK, ALPHA)

    layer = build(0, 1e30)
    for name in ("lora_A", "lora_B"):
        if not isinstance(getattr(layer, name, None), nn.Parameter):
            raise CheckFailure(f"the layer has no nn.Parameter called {name}")
    compare_values(
        (tuple(layer.lora_A.shape), tuple(layer.lora_B.shape)),
        ((RANK, IN), (OUT, RANK)),
        what="shapes of (lora_A, lora_B)",
        likely_bugs=[
            (
                "A and B are swapped: A is (rank, in_features), B is (out_features, rank)",
                ((OUT, RANK), (RANK, IN)),
            ),
        ],
    )
    if not torch.all(layer.lora_B == 0):
        raise CheckFailure(
            "lora_B does not start at zero: B = 0 makes B A = 0, so the adapted model "
            "starts out exactly as the base model (use nn.init.zeros_ or torch.zeros)"
        )
    A0 = layer.lora_A.detach().clone()
    # A random init repeats under the same seed and changes with it; torch.empty's
    # leftovers do neither.
    again = build(0, -1e30).lora_A.detach()
    other = build(1, 1e30).lora_A.detach()
    seeded = torch.equal(A0, again) and not torch.equal(A0, other)
    if A0.any() and (not seeded or not torch.isfinite(A0).all() or A0.abs().max() > 100):
        raise CheckFailure(
            "lora_A is not randomly initialised (it does not follow the seed, or holds "
            "NaN or huge values): torch.empty leaves whatever was in memory, so "
            "initialise A (as nn.Linear initialises its weight)"
        )
    if torch.all(A0 == 0):
        raise CheckFailure(
            "lora_A starts at zero too: with A = B = 0 no gradient reaches B, and "
            "nothing ever trains; initialise A randomly (torch.empty alone is no "
            "initialisation: it holds whatever was in memory, often zeros)"
        )
    if layer.weight.requires_grad or (layer.bias is not None and layer.bias.requires_grad):
        raise CheckFailure(
            "the base weight (or bias) is trainable: freeze it with requires_grad_(False); "
            "only lora_A and lora_B should learn"
        )
    if not (layer.lora_A.requires_grad and layer.lora_B.requires_grad):
        raise CheckFailure("lora_A and lora_B must be trainable (requires_grad=True)")
    if abs(float(getattr(layer, "scaling", float("nan"))) - ALPHA / RANK) > 1e-9:
        raise CheckFailure(
            f"layer.scaling should be alpha / rank = {ALPHA / RANK:g}, got "
            f"{getattr(layer, 'scaling', 'no attribute')}"
        )
    _fill(layer)
    ref = reference.LoRALinear(IN, OUT, RANK, ALPHA)
    ref.load_state_dict({k: v for k, v in layer.state_dict().items() if k in ref.state_dict()})
    x = torch.randn(3, 5, IN, generator=torch.Generator().manual_seed(1))  # (B, T, in)
    W, b, A, B = ref.weight, ref.bias, ref.lora_A, ref.lora_B
    base = F.linear(x, W, b)
    with torch.no_grad():
        got, expected = call(layer, x, names=["x"]), ref(x)
        bugs = [
            ("the update is not scaled: multiply it by alpha / rank", base + x @ A.T @ B.T),
            (
                "the scaling is upside down: it is alpha / rank, not rank / alpha",
                base + x @ A.T @ B.T * (RANK / ALPHA),
            ),
            (
                "the base layer's output is missing: return base(x) + the update",
                x @ A.T @ B.T * (ALPHA / RANK),
            ),
            (
                "B and A are used the wrong way round: x goes through A first (x @ A.T), then B",
                base + x @ B @ A * (ALPHA / RANK),
            ),
            (
                "the bias is missing from the base output",
                x @ W.T + x @ A.T @ B.T * (ALPHA / RANK),
            ),
        ]
    compare_tensors(got, expected, what="layer output", likely_bugs=bugs)


def _tiny_model() -> nn.Module:
    from ..model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=16, n_embd=16, n_layer=2, n_head=2))
    reference.apply_lora(model, ["c_attn", "mlp.c_fc"], rank=2, alpha=4)
    for p in model.parameters():  # the learner's function must do all the freezing
        p.requires_grad_(True)
    return model


@check("mark_only_lora_trainable", reference.mark_only_lora_trainable)
def check_mark_only_lora_trainable(f):
    """Check that ``mark_only_lora_trainable(model)`` leaves exactly the adapters trainable."""
    model = _tiny_model()
    names = [n for n, _ in model.named_parameters()]
    call(f, model)
    got = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    expected = sorted(n for n in names if n.endswith(("lora_A", "lora_B")))
    if got == expected:
        return
    base = sorted(n for n in names if n not in expected)
    if got == base:
        raise CheckFailure(
            "the condition is inverted: the adapters were frozen and the base model left trainable"
        )
    if got == sorted(names):
        raise CheckFailure(
            "nothing was frozen: requires_grad is a flag of each parameter (set it on "
            "the tensors that named_parameters() gives), not of a module or of no_grad()"
        )
    if not got:
        raise CheckFailure(
            "nothing is trainable: the adapters lora_A and lora_B must stay trainable"
        )
    still = [n for n in got if n not in expected]
    if still:
        sample = ", ".join(still[:3])
        if all(n.endswith("bias") for n in still):
            hint = " The biases are parameters too: freeze every parameter that is not an adapter."
        elif any("ln_" in n or "wte" in n or "wpe" in n for n in still):
            hint = (
                " The LayerNorms and embeddings are parameters too: freeze every parameter "
                "whose name does not end in lora_A or lora_B."
            )
        else:
            hint = ""
        raise CheckFailure(f"{len(still)} base parameters are still trainable ({sample}...).{hint}")
    missing = [n for n in expected if n not in got]
    raise CheckFailure(f"{len(missing)} adapter parameters were frozen, e.g. {missing[0]}")


@check(
    "merged_weight",
    reference.merged_weight,
    crash_meanings=[
        (
            r"must match the size of tensor|shapes cannot be multiplied",
            "a product in the wrong order: lora_B is (out, rank) and lora_A is (rank, in), so "
            "only one order gives (out, in), the weight's shape",
        )
    ],
)
def check_merged_weight(f):
    """Check ``merged_weight(layer)``: the single weight equal to base plus adapter."""
    layer = reference.LoRALinear(IN, OUT, RANK, ALPHA)
    _fill(layer, seed=2)
    W, A, B, s = layer.weight, layer.lora_A, layer.lora_B, layer.scaling
    before = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        got = call(f, layer)
        changed = [k for k, v in layer.state_dict().items() if not torch.equal(v, before[k])]
        if changed:
            raise CheckFailure(
                f"merged_weight changed the layer's {changed[0]} in place; the layer must "
                "stay as it was (its forward would now add the update twice): compute a "
                "new tensor"
            )
        bugs = [
            (
                "transposed: B @ A is (out, in) like the weight; A.T @ B.T is (in, out)",
                W + s * (A.T @ B.T),
            ),
            ("the update is not scaled by alpha / rank", W + B @ A),
            ("the scaling is upside down: it is alpha / rank", W + (B @ A) / s),
            ("this is only the update: add it to the base weight", s * (B @ A)),
            (
                "the whole weight is transposed: nn.Linear stores (out_features, in_features)",
                (W + s * (B @ A)).T,
            ),
        ]
        compare_tensors(got, reference.merged_weight(layer), what="merged weight", likely_bugs=bugs)
    # The merged weight must do the layer's work on its own.
    x = torch.randn(4, IN, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        compare_tensors(F.linear(x, got, layer.bias), layer(x), what="output of the merged layer")
