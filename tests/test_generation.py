"""Generation against transformers: greedy ids, sampling distributions, cache, cropping."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from gpt2course.generation import (
    generate,
    next_token_probs,
    sample_next_token,
    stream,
)
from gpt2course.model import GPT, GPTConfig
from gpt2course.pretrained import from_transformers as from_hf


@pytest.fixture(scope="module")
def pair():
    # A large init scale makes the random model's greedy choices vary with the context
    # (at 0.02 it repeats one token) and keeps the top two logits far apart.
    torch.manual_seed(0)
    cfg = GPT2Config(
        n_layer=2, n_head=3, n_embd=48, n_positions=96, vocab_size=100, initializer_range=0.5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    hf = GPT2LMHeadModel(cfg).eval()
    return hf, from_hf(hf)


def prompt(B=2, T=5, vocab=100, seed=0):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_50_tokens_equal_transformers(pair, use_cache):
    hf, ours = pair
    idx = prompt()
    want = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=50, do_sample=False,
        pad_token_id=0,
    )  # fmt: skip
    got = generate(ours, idx, 50, temperature=0, use_cache=use_cache)
    assert got.shape == (2, 55)
    assert len(set(want[0, 5:].tolist())) > 5  # a real test, not one repeated token
    assert torch.equal(got, want)


def test_seeded_sampling_is_reproducible(pair):
    _, ours = pair
    idx = prompt()

    def run(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return generate(ours, idx, 30, temperature=0.9, top_k=40, top_p=0.95, generator=g, **kw)

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(a, run(1, use_cache=True))  # the cache changes nothing but speed


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, None, None), (0.7, 10, None), (1.3, None, 0.8), (0.8, 5, 0.5)]
)
def test_sampling_distribution_equals_transformers_warpers(temperature, top_k, top_p):
    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(0)) * 3
    want = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k is not None:
        want = TopKLogitsWarper(top_k)(None, want)
    if top_p is not None:
        want = TopPLogitsWarper(top_p)(None, want)
    want = want.softmax(-1)
    torch.testing.assert_close(next_token_probs(logits, temperature, top_k, top_p), want)


def test_sampling_follows_the_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    ids = sample_next_token(logits, temperature=0.8, top_k=3, generator=g)[:, 0]
    freq = torch.bincount(ids, minlength=5).float() / len(ids)
    want = torch.softmax(torch.tensor([2.0, 1.0, 0.5]) / 0.8, -1)
    assert freq[3:].sum() == 0
    torch.testing.assert_close(freq[:3], want, atol=0.015, rtol=0)


def test_cropping_past_the_context_equals_a_cropped_reference(pair):
    """Past context_length each step sees the last context_length tokens, with or without cache."""
    hf, ours = pair
    context_length = hf.config.n_positions
    idx = prompt(B=1, T=context_length - 10)
    ref = idx
    with torch.no_grad():
        for _ in range(30):
            logits = hf(ref[:, -context_length:]).logits
            ref = torch.cat([ref, logits[:, -1:].argmax(-1)], dim=1)
    for use_cache in (True, False):
        assert torch.equal(generate(ours, idx, 30, temperature=0, use_cache=use_cache), ref)
    # A prompt longer than the context is cropped too.
    long = prompt(B=1, T=context_length + 7)
    out = generate(ours, long, 3, temperature=0)
    assert torch.equal(out[:, :-3], long)
    assert torch.equal(
        out[:, -3:], generate(ours, long[:, -context_length:], 3, temperature=0)[:, -3:]
    )


def test_stream_yields_the_generated_tokens(pair):
    _, ours = pair
    idx = prompt()
    toks = list(stream(ours, idx, 12, temperature=0))
    assert all(t.shape == (2,) for t in toks)
    assert torch.equal(torch.stack(toks, 1), generate(ours, idx, 12, temperature=0)[:, 5:])


def test_stops_at_eos_and_pads_finished_rows(pair):
    _, ours = pair
    idx = prompt()
    free = generate(ours, idx, 20, temperature=0)
    eos = int(free[0, 5 + 3])  # a token row 0 emits by its 4th step
    out = generate(ours, idx, 20, temperature=0, eos_token=eos)
    ends = []
    for row in free[:, 5:].tolist():
        ends.append(row.index(eos) + 1 if eos in row else 20)
    assert ends[0] <= 4
    assert out.shape == (2, 5 + max(ends))  # stops once every row is done
    for r, end in enumerate(ends):
        assert torch.equal(out[r, : 5 + end], free[r, : 5 + end])
        assert (out[r, 5 + end :] == eos).all()  # a finished row is padded with eos


def test_mode_is_restored_and_dropout_is_off_during_generation():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(n_layer=1, n_head=2, n_embd=16, context_length=32, vocab_size=50, dropout=0.5)
    )
    model.train()
    idx = prompt(B=1, vocab=50)
    a = generate(model, idx, 10, temperature=0, use_cache=True)
    b = generate(model, idx, 10, temperature=0)
    assert torch.equal(a, b)  # dropout on would make them differ
    assert model.training
    model.eval()
    generate(model, idx, 2)
    assert not model.training


def test_zero_new_tokens_returns_the_prompt(pair):
    _, ours = pair
    idx = prompt()
    assert torch.equal(generate(ours, idx, 0), idx)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(temperature=-0.5), "temperature must be a number >= 0"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(top_k=0), "top_k must be a whole number >= 1"),
        (dict(max_new_tokens=-1), "max_new_tokens must be a whole number >= 0"),
    ],
)
def test_bad_parameters_are_clear_errors(pair, kwargs, match):
    _, ours = pair
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate(ours, prompt(), **kwargs)
    if "max_new_tokens" not in match:
        with pytest.raises(ValueError, match=match):
            next(stream(ours, prompt(), **kwargs))


class CountingStore:
    """A learner's LayerCache, written their own way (a list of chunks), counting its calls."""

    updates = 0

    def __init__(self):
        self.ks, self.vs = [], []

    def __len__(self):
        return sum(k.size(2) for k in self.ks)

    def update(self, k, v):
        CountingStore.updates += 1
        self.ks.append(k)
        self.vs.append(v)
        return torch.cat(self.ks, dim=2), torch.cat(self.vs, dim=2)


def test_a_learners_layer_cache_decodes_as_transformers_does(pair):
    hf, ours = pair
    idx = prompt()
    want = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=30, do_sample=False,
        pad_token_id=0,
    )  # fmt: skip
    CountingStore.updates = 0
    got = generate(ours, idx, 30, temperature=0, use_cache=True, layer_cache=CountingStore)
    assert torch.equal(got, want)
    # Every layer's store, the learner's, took the prompt and then each new token but the last.
    assert CountingStore.updates == 30 * ours.config.n_layer
    # Past the context the cache starts again from the window: new stores, same ids as HF's
    # cropped generation (the no-cache loop, which test_cropping checks against HF).
    long = prompt(T=90)
    kw = dict(temperature=0)
    assert torch.equal(
        generate(ours, long, 12, use_cache=True, layer_cache=CountingStore, **kw),
        generate(ours, long, 12, use_cache=False, **kw),
    )
    toks = list(stream(ours, idx, 3, use_cache=True, layer_cache=CountingStore, **kw))
    assert torch.equal(torch.stack(toks, 1), want[:, 5:8])


def test_a_layer_cache_without_use_cache_is_a_clear_error(pair):
    _, ours = pair
    with pytest.raises(ValueError, match="use_cache=True"):
        generate(ours, prompt(), 3, layer_cache=CountingStore)


def test_bad_prompts_are_clear_errors(pair):
    _, ours = pair
    with pytest.raises(ValueError, match=r"idx\[None\]"):
        generate(ours, torch.tensor([1, 2, 3]), 3)
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(ours, torch.zeros(1, 0, dtype=torch.long), 3)


# The notebook's checks are tried in tests/checks/test_generation.py.
