"""Our attention against torch's: F.scaled_dot_product_attention and nn.MultiheadAttention."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2course.attention import (
    CausalSelfAttention,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)
from gpt2course.cache import CachedLayer, LayerCache
from gpt2course.model import GPTConfig


def qkv(B, H, Tq, Tk, d, dtype=torch.float32, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Tq, d, generator=g) * scale
    k = torch.randn(B, H, Tk, d, generator=g) * scale
    v = torch.randn(B, H, Tk, d, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    B=st.integers(1, 3),
    H=st.integers(1, 4),
    T=st.integers(1, 40),
    d=st.sampled_from([1, 4, 16, 64]),
    seed=st.integers(0, 2**16),
)
def test_causal_matches_torch(B, H, T, d, seed):
    q, k, v = qkv(B, H, T, T, d, seed=seed)
    ours = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    Tq=st.integers(1, 24),
    Tk=st.integers(1, 24),
    d=st.sampled_from([2, 8, 32]),
    p=st.floats(0.0, 1.0),
    per_head=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_arbitrary_mask_matches_torch(Tq, Tk, d, p, per_head, seed):
    q, k, v = qkv(2, 3, Tq, Tk, d, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    shape = (2, 3, Tq, Tk) if per_head else (Tq, Tk)
    mask = torch.rand(shape, generator=g) < p  # may contain fully masked rows
    ours = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not ours.isnan().any()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_no_mask_and_long_sequence():
    q, k, v = qkv(1, 2, 1024, 1024, 64)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v),
        F.scaled_dot_product_attention(q, k, v),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, mask=causal_mask(1024)),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        atol=1e-6,
        rtol=0,
    )


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = qkv(1, 1, 3, 4, 8)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out, w = scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True)
    assert not out.isnan().any() and not w.isnan().any()
    assert (out[0, 0, 1] == 0).all() and (w[0, 0, 1] == 0).all()
    torch.testing.assert_close(w.sum(-1)[0, 0], torch.tensor([1.0, 0.0, 1.0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_big_logits_are_stable(dtype):
    # Raw dot products of q, k ~ 60 * N(0, 1) in 64 dims would overflow fp16 (max 65504) and exp() of
    # logits in the hundreds overflows both fp16 and bf16: the row max must be subtracted.
    q, k, v = qkv(1, 2, 16, 16, 64, scale=60.0)
    q16, k16, v16 = q.to(dtype), k.to(dtype), v.to(dtype)
    out = scaled_dot_product_attention(q16, k16, v16, mask=causal_mask(16))
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = F.scaled_dot_product_attention(q16.float(), k16.float(), v16.float(), is_causal=True)
    tol = 2e-2 if dtype == torch.float16 else 1e-1
    torch.testing.assert_close(out.float(), ref, atol=tol, rtol=0)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_matches_torch(dtype):
    # On a GPU torch picks FlashAttention or the memory-efficient kernel, which keep the
    # scores in fp32 inside; ours rounds them to half precision, so with very large logits
    # it stays finite (tested on CPU above) but drifts further. At GPT-2's usual scale both
    # match an fp32 reference on the same rounded inputs at half precision's tolerance.
    h = [t.cuda().to(dtype) for t in qkv(4, 12, 300, 300, 64)]
    ref = F.scaled_dot_product_attention(*(t.float() for t in h), is_causal=True)
    ours = scaled_dot_product_attention(*h, mask=causal_mask(300, device="cuda"))
    theirs = F.scaled_dot_product_attention(*h, is_causal=True)
    assert torch.isfinite(ours).all()
    tol = 1e-2 if dtype == torch.float16 else 5e-2
    torch.testing.assert_close(ours.float(), ref, atol=tol, rtol=0)
    torch.testing.assert_close(theirs.float(), ref, atol=tol, rtol=0)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_module_fused_equals_explicit(dtype):
    torch.manual_seed(3)
    attn = CausalSelfAttention(small_config(n_embd=768, n_head=12)).cuda().to(dtype).eval()
    x = torch.randn(2, 200, 768, device="cuda", dtype=dtype)
    with torch.no_grad():
        fused = attn(x)
        explicit, w = step_by_step(attn, x)
        cache = CachedLayer(LayerCache())
        first = attn(x[:, :150], cache)
        rest = attn(x[:, 150:], cache)
    tol = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(first.float(), fused[:, :150].float(), atol=tol, rtol=0)
    torch.testing.assert_close(explicit.float(), fused.float(), atol=tol, rtol=0)
    torch.testing.assert_close(rest.float(), fused[:, 150:].float(), atol=tol, rtol=0)
    assert torch.isfinite(w).all()


def test_weights_rows_sum_to_one_and_respect_mask():
    q, k, v = qkv(2, 2, 6, 6, 8)
    _, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(6), return_weights=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 6))
    assert (w.masked_select(~causal_mask(6)) == 0).all()


def test_dropout_drops_and_rescales():
    q, k, v = qkv(1, 1, 64, 64, 8)
    torch.manual_seed(0)
    _, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    _, w0 = scaled_dot_product_attention(q, k, v, return_weights=True)
    kept = w != 0
    assert 0.3 < kept.float().mean() < 0.7
    torch.testing.assert_close(w[kept], 2 * w0[kept])


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool
    assert m.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]
    # torch's own lower-triangular pattern, for a long T
    assert torch.equal(causal_mask(300), torch.tril(torch.ones(300, 300)).bool())


def test_bad_inputs_are_explained():
    q, k, v = qkv(1, 1, 4, 5, 8)
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=causal_mask(4))
    with pytest.raises(ValueError, match="same last dimension"):
        scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="one value per key"):
        scaled_dot_product_attention(q, k, v[..., :3, :])
    with pytest.raises(ValueError, match="at least one"):
        causal_mask(0)


def test_split_merge_heads_match_torch_mha_layout():
    x = torch.randn(2, 5, 12)
    h = split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    # head i owns channels i*4 .. i*4+3, as nn.MultiheadAttention slices them
    torch.testing.assert_close(h[:, 1], x[..., 4:8])
    torch.testing.assert_close(merge_heads(h), x)
    with pytest.raises(ValueError, match="split evenly"):
        split_heads(x, 5)


def step_by_step(attn: CausalSelfAttention, x: torch.Tensor):
    """The module's output and weights through the explicit attention of part 3."""
    q, k, v = (split_heads(t, attn.n_head) for t in attn.c_attn(x).split(attn.n_embd, dim=2))
    mask = causal_mask(x.size(1), device=x.device)
    y, w = scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True)
    return attn.c_proj(merge_heads(y)), w


def small_config(**kw):
    return GPTConfig(
        **{**dict(vocab_size=100, context_length=64, n_embd=32, n_layer=1, n_head=4), **kw}
    )


def test_module_matches_torch_multihead_attention():
    torch.manual_seed(0)
    cfg = small_config()
    attn = CausalSelfAttention(cfg).eval()
    mha = torch.nn.MultiheadAttention(cfg.n_embd, cfg.n_head, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.c_attn.weight)
        mha.in_proj_bias.copy_(attn.c_attn.bias)
        mha.out_proj.weight.copy_(attn.c_proj.weight)
        mha.out_proj.bias.copy_(attn.c_proj.bias)
    x = torch.randn(3, 11, cfg.n_embd)
    blocked = ~causal_mask(11)  # nn.MultiheadAttention's mask says where NOT to attend
    with torch.no_grad():
        expected, expected_w = mha(x, x, x, attn_mask=blocked, average_attn_weights=False)
        y_fused = attn(x)
        y_explicit, w = step_by_step(attn, x)
    torch.testing.assert_close(y_fused, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(y_explicit, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(w, expected_w, atol=1e-6, rtol=0)


def test_module_fused_equals_explicit_with_cache():
    torch.manual_seed(1)
    attn = CausalSelfAttention(small_config()).eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full = attn(x)
        cache = CachedLayer(LayerCache())
        first = attn(x[:, :6], cache)
        rest = attn(x[:, 6:8], cache)  # two new queries: a mask over the 8 keys
        last = attn(x[:, 8:], cache)  # one new query: it sees every key
        explicit, _ = step_by_step(attn, x)
    torch.testing.assert_close(torch.cat([first, rest, last], 1), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(explicit, full, atol=1e-6, rtol=0)
    assert cache.store.k.shape == (2, 4, 9, 8)


def test_module_is_causal():
    torch.manual_seed(2)
    attn = CausalSelfAttention(small_config()).eval()
    x = torch.randn(1, 8, 32)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 32)  # change the future
    with torch.no_grad():
        torch.testing.assert_close(attn(x)[:, :5], attn(x2)[:, :5])


def test_module_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(small_config(n_head=5))
    attn = CausalSelfAttention(small_config())
    with pytest.raises(ValueError, match=r"\(batch, time, 32\)"):
        attn(torch.randn(8, 32))


# --- the exercises' checks: each typical wrong solution is named -----------------------------

import math  # noqa: E402

from gpt2course import attention as ref  # noqa: E402
from gpt2course import checks  # noqa: E402


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)


def sdpa_solution(q, k, v, mask=None, bug=None):
    scores = q @ k.transpose(-2, -1)
    if bug != "unscaled":
        scores = scores / math.sqrt(q.size(-1))
    if mask is not None and bug not in ("after_softmax", "inverted", "zero_fill"):
        scores = scores.masked_fill(~mask, float("-inf"))
    if mask is not None and bug == "inverted":
        scores = scores.masked_fill(mask, float("-inf"))
    if mask is not None and bug == "zero_fill":
        scores = scores.masked_fill(~mask, 0.0)
    w = scores.softmax(dim=-2 if bug == "dim" else -1)
    if mask is not None and bug == "after_softmax":
        w = w.masked_fill(~mask, 0.0)
    if mask is not None and bug != "inverted":  # a query that may see no key: zero weights
        w = w.masked_fill(~mask.any(-1, keepdim=True), 0.0)
    return w @ v


@pytest.mark.parametrize(
    "bug, message",
    [
        ("unscaled", "did you divide by sqrt(d_k)?"),
        ("after_softmax", "mask is applied after the softmax"),
        ("inverted", "mask is inverted"),
        ("zero_fill", "set them to float('-inf')"),
        ("dim", "softmax runs over the wrong axis"),
    ],
)
def test_check_sdpa_names_the_bug(lenient, capsys, bug, message):
    got = checks.check_scaled_dot_product_attention(
        lambda q, k, v, mask=None: sdpa_solution(q, k, v, mask, bug)
    )
    assert got is ref.scaled_dot_product_attention
    out = capsys.readouterr().out
    assert out.startswith("✗ scaled_dot_product_attention") and message in out


def test_check_sdpa_accepts_right_and_torch(lenient, capsys):
    assert checks.check_scaled_dot_product_attention(sdpa_solution) is sdpa_solution

    def torch_sdpa(q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    assert checks.check_scaled_dot_product_attention(torch_sdpa) is torch_sdpa
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upside down"),
        (lambda T: torch.ones(T, T).tril(), "should be boolean"),
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal is missing"),
        (lambda T: ~torch.ones(T, T, dtype=torch.bool).tril(), "inverted"),
    ],
)
def test_check_causal_mask_names_the_bug(lenient, capsys, wrong, message):
    assert checks.check_causal_mask(wrong) is ref.causal_mask
    out = capsys.readouterr().out
    assert out.startswith("✗ causal_mask") and message in out


def test_check_causal_mask_accepts_right(lenient, capsys):
    def right(T):
        return torch.tril(torch.ones(T, T)).bool()

    assert checks.check_causal_mask(right) is right


def test_check_heads_name_the_bug(lenient, capsys):
    def split_no_transpose(x, n_head):
        B, T, C = x.shape
        return x.view(B, n_head, T, C // n_head)

    def merge_wrong_order(x):
        B, H, T, D = x.shape
        return x.reshape(B, T, H * D)

    def merge_view(x):
        B, H, T, D = x.shape
        return x.transpose(1, 2).view(B, T, H * D)

    assert checks.check_split_heads(split_no_transpose) is ref.split_heads
    assert "mixes positions and channels" in capsys.readouterr().out
    assert checks.check_merge_heads(merge_wrong_order) is ref.merge_heads
    assert "heads merged in the wrong order" in capsys.readouterr().out
    assert checks.check_merge_heads(merge_view) is ref.merge_heads
    assert ".contiguous()" in capsys.readouterr().out


def test_check_heads_accept_right(lenient, capsys):
    def split(x, n_head):
        return x.unflatten(-1, (n_head, -1)).transpose(1, 2)

    def merge(x):
        return x.transpose(1, 2).flatten(2)

    assert checks.check_split_heads(split) is split
    assert checks.check_merge_heads(merge) is merge
    assert capsys.readouterr().out.count("✓") == 2


def make_module(bug=None):
    class Attention(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.n_head, self.n_embd = config.n_head, config.n_embd
            self.c_attn = torch.nn.Linear(config.n_embd, 3 * config.n_embd)
            name = "proj" if bug == "names" else "c_proj"
            setattr(self, name, torch.nn.Linear(config.n_embd, config.n_embd))

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            if bug == "kqv":
                k, q, v = q, k, v
            q, k, v = (ref.split_heads(t, self.n_head) for t in (q, k, v))
            mask = None if bug == "no_mask" else ref.causal_mask(T, device=x.device)
            y = sdpa_solution(q, k, v, mask, "unscaled" if bug == "unscaled" else None)
            y = y.reshape(B, T, C) if bug == "merge" else ref.merge_heads(y)
            return y if bug == "no_proj" else self.c_proj(y)

    return Attention


@pytest.mark.parametrize(
    "bug, message",
    [
        ("merge", "heads merged in the wrong order"),
        ("no_mask", "no causal mask"),
        ("unscaled", "did you divide by sqrt(d_k)?"),
        ("kqv", "split in the wrong order"),
        ("no_proj", "c_proj is not applied"),
        ("names", "named like GPT-2's"),
    ],
)
def test_check_module_names_the_bug(lenient, capsys, bug, message):
    fallback = checks.check_causal_self_attention(make_module(bug))
    out = capsys.readouterr().out
    assert out.startswith("✗ CausalSelfAttention") and message in out
    # the fallback has the exercise's interface: forward(x) -> y
    x = torch.randn(1, 4, 32)
    assert fallback(GPTConfig(n_embd=32, n_head=4))(x).shape == x.shape


def test_check_module_accepts_right_and_reference(lenient, capsys, monkeypatch):
    monkeypatch.setattr(checks._core, "_HANDED_BACK", [])  # the reference, not handed back yet
    right = make_module()
    assert checks.check_causal_self_attention(right) is right
    assert checks.check_causal_self_attention(CausalSelfAttention) is CausalSelfAttention
    assert capsys.readouterr().out.count("✓") == 2
