"""Our GPT against Hugging Face's GPT2LMHeadModel with the same (random) weights."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2course.attention import CausalSelfAttention
from gpt2course.cache import KVCache, StaticKVCache
from gpt2course.model import GPT, MODEL_NAMES, Block, GPTConfig, count_parameters, lm_loss
from gpt2course.pretrained import from_transformers as from_hf


def hf_model(seed: int, **kw) -> GPT2LMHeadModel:
    """A random-weight transformers GPT-2 with dropout off."""
    torch.manual_seed(seed)
    cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **kw)
    hf = GPT2LMHeadModel(cfg).eval()
    # Random init leaves LayerNorms at 1/0 and biases at 0; perturb them so a swapped
    # or missing LayerNorm/bias would show in the logits.
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.add_(0.02 * torch.randn_like(p))
    return hf


CONFIGS = [
    # (n_layer, n_head, n_embd, context_length, vocab_size, T)
    (1, 1, 8, 16, 50, 1),
    (1, 3, 24, 16, 97, 16),
    (2, 5, 40, 32, 101, 7),
    (3, 7, 56, 24, 64, 24),
    (2, 4, 32, 64, 257, 33),
    (3, 3, 48, 20, 1000, 2),
]


@pytest.mark.parametrize("n_layer,n_head,n_embd,context_length,vocab,T", CONFIGS)
def test_logits_match_transformers(n_layer, n_head, n_embd, context_length, vocab, T):
    hf = hf_model(
        n_layer,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        n_positions=context_length,
        vocab_size=vocab,
    )
    ours = from_hf(hf)
    g = torch.Generator().manual_seed(T)
    idx = torch.randint(0, vocab, (3, T), generator=g)
    with torch.no_grad():
        want = hf(idx).logits
        got = ours(idx)
    assert got.shape == (3, T, vocab)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_loss_matches_transformers():
    hf = hf_model(0, n_layer=2, n_head=3, n_embd=24, n_positions=32, vocab_size=80)
    ours = from_hf(hf)
    idx = torch.randint(0, 80, (4, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = hf(idx, labels=idx).loss  # HF shifts the labels itself
        logits = ours(idx[:, :-1])
        loss = lm_loss(logits, idx[:, 1:])
    assert logits.shape == (4, 19, 80)
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=0)


def test_kv_cache_forward_matches_full_forward():
    hf = hf_model(1, n_layer=2, n_head=3, n_embd=24, n_positions=32, vocab_size=80)
    ours = from_hf(hf)
    idx = torch.randint(0, 80, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(idx).logits
        cache = KVCache(2)
        first = ours(idx[:, :8], cache=cache)  # a prompt of 8, then 3 at once, then 1
        rest = ours(idx[:, 8:11], cache=cache)
        assert len(cache) == 11
        one = ours(idx[:, 11:], cache=cache)  # a decoding step
    torch.testing.assert_close(torch.cat([first, rest, one], 1), want, atol=1e-4, rtol=0)
    assert cache.layers[0].store.k.shape == (2, 3, 12, 8)  # (B, n_head, T, head_dim)


def test_static_cache_gives_the_growing_caches_logits():
    hf = hf_model(2, n_layer=2, n_head=3, n_embd=24, n_positions=32, vocab_size=80)
    ours = from_hf(hf)
    idx = torch.randint(0, 80, (2, 9), generator=torch.Generator().manual_seed(2))
    cache = StaticKVCache(ours.config, batch=2, length=16, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        want = hf(idx).logits
        first = ours(idx[:, :6], cache=cache)
        cache.advance(6)  # the static cache's caller counts the positions written
        steps = []
        for t in range(6, 9):
            steps.append(ours(idx[:, t : t + 1], cache=cache))
            cache.advance(1)
    torch.testing.assert_close(torch.cat([first, *steps], 1), want, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_real_gpt2_shape_matches_transformers():
    hf = hf_model(0)  # GPT2Config's defaults are gpt2's shape
    ours = from_hf(hf)
    assert ours.num_params() == 124_439_808
    idx = torch.randint(0, 50257, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-4, rtol=0)


def test_module_names_are_hugging_faces():
    hf = hf_model(0, n_layer=2, n_head=2, n_embd=8, n_positions=8, vocab_size=10)
    theirs = {
        k.removeprefix("transformer.")
        for k in hf.state_dict()
        if not (k.endswith(("attn.bias", "attn.masked_bias")) and not k.endswith("c_attn.bias"))
    }
    ours = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=8, context_length=8, vocab_size=10))
    assert set(ours.state_dict()) == theirs
    assert ours.lm_head.weight is ours.wte.weight  # tied


PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_counts_are_the_published_ones(name):
    assert count_parameters(name) == PUBLISHED[name]
    assert count_parameters(GPTConfig.from_name(name)) == PUBLISHED[name]


def test_parameter_count_matches_transformers_on_a_small_shape():
    hf = hf_model(0, n_layer=3, n_head=5, n_embd=40, n_positions=30, vocab_size=123)
    assert from_hf(hf).num_params() == hf.num_parameters()


def test_too_long_input_is_a_clear_error():
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, context_length=8, vocab_size=10))
    with pytest.raises(ValueError, match="longer than the model's context of 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = KVCache(1)
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="crop the input"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_bad_inputs_are_clear_errors():
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, context_length=8, vocab_size=10))
    with pytest.raises(ValueError, match=r"idx\[None\]"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="token ids are integers"):
        model(torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="choose one of"):
        GPTConfig.from_name("gpt3")


def test_every_module_maps_a_tensor_to_a_tensor():
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=8, context_length=8, vocab_size=10)
    x = torch.randn(1, 3, 8)
    assert Block(cfg)(x).shape == CausalSelfAttention(cfg)(x).shape == (1, 3, 8)
    assert GPT(cfg)(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 10)
