"""LoRA against the paper's formula, torch's own linear layers, and the base model."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course.lora import (
    LoRALinear,
    apply_lora,
    load_adapters,
    lora_state_dict,
    merge_lora,
    parameter_counts,
    save_adapters,
    training_memory_bytes,
)
from gpt2course.model import GPT, GPTConfig, lm_loss

TINY = GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4)
TARGETS = ["c_attn", "mlp.c_fc", "mlp.c_proj"]


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY).eval()


def randomise_B(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def idx(B: int = 2, T: int = 16) -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (B, T), generator=torch.Generator().manual_seed(3))


def test_lora_linear_is_the_papers_formula():
    torch.manual_seed(0)
    base = nn.Linear(12, 20)
    layer = LoRALinear.from_linear(base, rank=4, alpha=8)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 5, 12)
    # h = W0 x + b + (alpha / r) B A x, written with torch's own ops.
    want = F.linear(x, base.weight, base.bias) + (8 / 4) * F.linear(
        F.linear(x, layer.lora_A), layer.lora_B
    )
    torch.testing.assert_close(layer(x), want, atol=1e-6, rtol=1e-5)
    assert layer.weight is base.weight  # shared, not copied


def test_zero_B_gives_exactly_the_base_logits():
    model = tiny_gpt()
    base = copy.deepcopy(model)
    apply_lora(model, TARGETS, rank=4, alpha=8)
    x = idx()
    assert torch.equal(model(x), base(x))


def test_targets_match_on_dot_boundaries_and_base_is_frozen():
    model = apply_lora(tiny_gpt(), ["c_attn", "mlp.c_proj"], rank=2, alpha=4)
    adapted = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert adapted == {f"h.{i}.attn.c_attn" for i in range(2)} | {
        f"h.{i}.mlp.c_proj" for i in range(2)
    }
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    # The base keys are unchanged, so a base checkpoint still loads.
    assert set(tiny_gpt().state_dict()) <= set(model.state_dict())


def test_only_adapter_params_get_gradients():
    model = apply_lora(tiny_gpt(), TARGETS, rank=4, alpha=8)
    randomise_B(model)
    x = idx()
    loss = lm_loss(model(x), x)
    loss.backward()
    for name, p in model.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_merged_weights_give_the_adapter_logits():
    model = apply_lora(tiny_gpt(), TARGETS, rank=4, alpha=8)
    randomise_B(model)
    x = idx()
    with torch.no_grad():
        adapted = model(x)
        expected_w = model.h[0].attn.c_attn.weight + 2.0 * (
            model.h[0].attn.c_attn.lora_B @ model.h[0].attn.c_attn.lora_A
        )
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert type(model.h[0].attn.c_attn) is nn.Linear
    torch.testing.assert_close(model.h[0].attn.c_attn.weight, expected_w)
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=0)
    # A merged model is a plain GPT: its state dict loads into a fresh one.
    fresh = GPT(TINY).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), adapted, atol=1e-5, rtol=0)


def test_merge_uses_the_learners_merged_weight():
    model = apply_lora(tiny_gpt(), TARGETS, rank=4, alpha=8)
    randomise_B(model)
    calls = []

    def mine(layer):  # a learner's merged_weight, written differently
        calls.append(layer)
        return layer.weight + layer.scaling * torch.einsum("or,ri->oi", layer.lora_B, layer.lora_A)

    x = idx()
    with torch.no_grad():
        adapted = model(x)
    merge_lora(model, weight_fn=mine)
    assert len(calls) == len(TARGETS) * len(model.h)
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=0)


def test_adapters_round_trip_alone(tmp_path):
    model = apply_lora(tiny_gpt(), TARGETS, rank=4, alpha=8)
    randomise_B(model)
    x = idx()
    want = model(x)
    path = save_adapters(model, tmp_path / "adapters.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert keys == set(lora_state_dict(model))
    assert all(k.endswith((".lora_A", ".lora_B")) for k in keys)
    # On a fresh base (same seed = same base weights) the adapters are rebuilt and loaded.
    restored = load_adapters(tiny_gpt(), path)
    assert torch.equal(restored(x), want)


def test_bad_inputs_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="no linear layer matches"):
        apply_lora(tiny_gpt(), ["q_proj"], rank=4, alpha=8)
    with pytest.raises(ValueError, match="lm_head"):
        apply_lora(tiny_gpt(), ["lm_head"], rank=4, alpha=8)
    with pytest.raises(ValueError, match="rank"):
        apply_lora(tiny_gpt(), ["c_attn"], rank=0, alpha=8)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(apply_lora(tiny_gpt(), ["c_attn"], rank=2, alpha=4), ["c_attn"], rank=2, alpha=4)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_adapters(tiny_gpt(), tmp_path / "a.safetensors")
    path = save_adapters(
        apply_lora(tiny_gpt(), ["c_attn"], rank=2, alpha=4), tmp_path / "a.safetensors"
    )
    with pytest.raises(ValueError, match="shape"):
        load_adapters(apply_lora(tiny_gpt(), ["c_attn"], rank=3, alpha=4), path)


def test_counts_and_memory():
    model = tiny_gpt()
    total = sum(p.numel() for p in model.parameters())
    assert parameter_counts(model) == (total, total)
    apply_lora(model, ["c_attn"], rank=4, alpha=8)
    per_layer = 4 * TINY.n_embd + 3 * TINY.n_embd * 4  # A (r, in) + B (out, r)
    trainable, total_lora = parameter_counts(model)
    assert trainable == TINY.n_layer * per_layer
    assert total_lora == total + trainable
    mem = training_memory_bytes(model)
    assert mem["gradients"] == 4 * trainable and mem["optimizer"] == 8 * trainable


# The notebook's checks are tried in tests/checks/test_finetuning.py.
