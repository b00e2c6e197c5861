"""The checks of notebook 03: attention, the causal mask, heads, the module."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import attention as ref
from gpt2course import checks

from .conftest import assert_right, assert_stub, assert_wrong, run

# --- scaled_dot_product_attention ------------------------------------------------------------


def sdpa(q, k, v, mask=None, bug=None):
    d = q.size(-1)
    kt = k.transpose(2, 3) if bug == "fixed_axes" else k.transpose(-2, -1)
    scale = {"unscaled": 1.0, "by_d": 1 / d}.get(bug, 1 / math.sqrt(d))
    scores = q @ kt * (1.0 if bug == "scale_after" else scale)
    if bug == "always_causal":
        mask = ref.causal_mask(q.size(-2))
    if bug == "inverted" and mask is not None:
        mask = ~mask
    if bug == "added" and mask is not None:
        scores = scores + mask  # True counts as 1
    elif mask is not None and bug not in ("ignored", "after"):
        fill = {"zero_fill": 0.0, "big_negative": -1e9}.get(bug, float("-inf"))
        scores = scores.masked_fill(~mask, fill)
    dim = {"dim_keys": -2, "dim_heads": 1}.get(bug, -1)
    w = scores.softmax(dim=dim)
    if bug == "scale_after":
        w = w * scale
    if bug == "after" and mask is not None:
        w = w.masked_fill(~mask, 0.0)
    if mask is not None and bug not in ("nan_row", "inverted"):
        w = w.nan_to_num(0.0)  # a query that may attend to no key: zero weights, not NaN
    return w @ v


def sdpa_if_mask(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def sdpa_in_place(q, k, v, mask=None):
    q /= math.sqrt(q.size(-1))
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


SDPA_WRONG = [
    ("unscaled", "divide by sqrt(d_k)?"),
    ("by_d", "divided by d_k"),
    ("dim_keys", "wrong axis"),
    ("dim_heads", "heads axis (dim=1)"),
    ("after", "applied after the softmax"),
    ("zero_fill", "set them to float('-inf')"),
    ("inverted", "the mask is inverted"),
    ("ignored", "the mask argument is ignored"),
    ("always_causal", "the causal mask is"),
    ("fixed_axes", "k.transpose(-2, -1)"),
    # A fully masked row (a query allowed to see no key): the reference and torch's kernel
    # give it zero weights; the plain softmax of all -inf gives NaN, a -1e9 fill the mean.
    ("nan_row", "zero weights"),
    ("big_negative", "zero weights"),
    ("added", "added to the scores"),
    ("scale_after", "after the softmax"),
]


@pytest.mark.parametrize("bug, expect", SDPA_WRONG, ids=[b for b, _ in SDPA_WRONG])
def test_sdpa_wrong_solutions_are_named(bug, expect):
    assert_wrong(
        checks.check_scaled_dot_product_attention,
        lambda q, k, v, mask=None: sdpa(q, k, v, mask, bug),
        expect,
    )


def test_sdpa_crashes_and_mutations_are_explained():
    out = assert_wrong(checks.check_scaled_dot_product_attention, sdpa_if_mask, "is not None")
    assert "if mask:" in out  # the learner's own line is quoted
    out = assert_wrong(checks.check_scaled_dot_product_attention, sdpa_in_place, "`q` in place")
    assert "sqrt" not in out  # not "did you divide by sqrt(d)?": it did


# --- causal_mask ------------------------------------------------------------------------------

MASK_WRONG = [
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upside down"),
    (lambda T: ~torch.ones(T, T, dtype=torch.bool).tril(), "the mask is inverted"),
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "the diagonal is missing"),
    (lambda T: torch.tril(torch.ones(T, T)), "should be boolean"),
    (lambda T: torch.ones(5, 5, dtype=torch.bool).tril(), "not a fixed size"),
    (lambda T: torch.ones(1, 1, T, T, dtype=torch.bool).tril(), "broadcasting adds"),
    (lambda T: torch.ones(T, T, dtype=torch.long).tril(), "got dtype torch.int64"),
]


@pytest.mark.parametrize("wrong, expect", MASK_WRONG, ids=[e for _, e in MASK_WRONG])
def test_causal_mask_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_causal_mask, wrong, expect)


# --- split_heads / merge_heads ----------------------------------------------------------------


def split(x, n_head, bug=None):
    B, T, C = x.shape
    hd = C // n_head
    return {
        None: lambda: x.view(B, T, n_head, hd).transpose(1, 2),
        "straight": lambda: x.view(B, n_head, T, hd),
        "interleaved": lambda: x.view(B, T, hd, n_head).permute(0, 3, 1, 2),
        "no_transpose": lambda: x.view(B, T, n_head, hd),
        "fixed_heads": lambda: x.view(B, T, 3, C // 3).transpose(1, 2),
        "swapped": lambda: x.view(B, T, hd, n_head).transpose(1, 2),
    }[bug]()


SPLIT_WRONG = [
    ("straight", "mixes positions and channels"),
    ("interleaved", "every n_head-th channel"),
    ("no_transpose", "not moved in front of the time axis"),
    ("fixed_heads", "split heads (n_head=4)"),
    ("swapped", "n_head and head_dim are swapped"),
]


@pytest.mark.parametrize("bug, expect", SPLIT_WRONG, ids=[b for b, _ in SPLIT_WRONG])
def test_split_heads_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_split_heads, lambda x, n: split(x, n, bug), expect)


MERGE_WRONG = [
    (lambda x: x.reshape(x.size(0), x.size(2), -1), "heads merged in the wrong order"),
    (lambda x: x.permute(0, 2, 3, 1).reshape(x.size(0), x.size(2), -1), "interleaved"),
    (lambda x: x.transpose(1, 2).view(x.size(0), x.size(2), -1), ".contiguous()"),
    (lambda x: x.transpose(1, 2), "the last two axes are not flattened"),
    (lambda x: x.transpose(1, 3).reshape(x.size(0), x.size(2), -1), "transpose(1, 3)"),
]


@pytest.mark.parametrize("wrong, expect", MERGE_WRONG, ids=[e for _, e in MERGE_WRONG])
def test_merge_heads_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_merge_heads, wrong, expect)


# --- CausalSelfAttention ----------------------------------------------------------------------


def attention_module(bug=None):
    class CausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.n_head, self.n_embd = config.n_head, config.n_embd
            C = config.n_embd
            if bug == "separate":
                self.q, self.k, self.v = (nn.Linear(C, C) for _ in range(3))
            if bug == "mask_parameter":  # a mask is not learned: it belongs in a buffer
                self.bias = nn.Parameter(torch.ones(config.context_length, config.context_length))
            self.c_attn = nn.Linear(C, 3 * C, bias=bug != "no_bias")
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            if bug == "kqv":
                k, q, v = q, k, v
            q, k, v = (ref.split_heads(t, self.n_head) for t in (q, k, v))
            hd = C // self.n_head
            scale = {"unscaled": 1.0, "sqrt_C": 1 / math.sqrt(C)}.get(bug, 1 / math.sqrt(hd))
            scores = q @ k.transpose(-2, -1) * scale
            if bug == "cpu_mask":  # the notebook's causal_mask(T): made on the CPU
                mask = torch.ones(T, T, dtype=torch.bool).tril()
            elif bug == "cpu_arange":
                mask = torch.arange(T)[:, None] >= torch.arange(T)
            else:
                mask = ref.causal_mask(T, device=x.device)
            if bug != "no_mask":
                scores = scores.masked_fill(~mask, float("-inf"))
            y = scores.softmax(dim=-2 if bug == "dim" else -1) @ v
            y = y.reshape(B, T, C) if bug == "merge" else ref.merge_heads(y)
            return y if bug == "no_proj" else self.c_proj(y)

    return CausalSelfAttention


MODULE_WRONG = [
    ("no_mask", "no causal mask"),
    ("unscaled", "unscaled scores"),
    ("sqrt_C", "sqrt(n_embd)"),
    ("merge", "heads merged in the wrong order"),
    ("kqv", "split in the wrong order"),
    ("no_proj", "c_proj is not applied"),
    ("dim", "the softmax runs over the wrong axis"),
    ("separate", "exactly two layers"),
    ("separate", "q.weight"),  # the real cause is named, not cut off
    ("no_bias", "c_attn.bias"),
    # A mask made on the CPU passes on a CPU and fails on a GPU: caught without one.
    ("cpu_mask", "x.device"),
    ("cpu_arange", "x.device"),
    ("mask_parameter", "register_buffer"),
]


@pytest.mark.parametrize("bug, expect", MODULE_WRONG, ids=[b for b, _ in MODULE_WRONG])
def test_module_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_causal_self_attention, attention_module(bug), expect)


class TorchAttention(nn.Module):
    """Right, written with torch's fused kernel and its is_causal flag."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).chunk(3, dim=-1)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class NanoGPTAttention(nn.Module):
    """Right, as nanoGPT writes it: the mask kept in a buffer named bias (GPT-2's own
    checkpoints carry attn.bias), so it moves with the module to the GPU."""

    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        n = config.context_length
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class DeviceMaskAttention(NanoGPTAttention):
    """Right: the mask made where x is, each call (no buffer)."""

    def __init__(self, config):
        super().__init__(config)
        del self.bias

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (ref.split_heads(t, self.n_head) for t in self.c_attn(x).split(C, dim=2))
        mask = torch.ones(T, T, dtype=torch.bool).tril().to(x.device)
        return self.c_proj(ref.merge_heads(ref.scaled_dot_product_attention(q, k, v, mask)))


def big_negative(q, k, v, mask=None):
    """Right: a -1e9 fill, and rows that may see no key zeroed by hand."""
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is None:
        return F.softmax(scores, dim=-1) @ v
    w = F.softmax(scores.masked_fill(mask == 0, -1e9), dim=-1)
    return (w * mask.any(-1, keepdim=True)) @ v


def safe_softmax(q, k, v, mask=None):
    """Right, as the reference: subtract each row's maximum, keep a fully masked row at 0."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    m = scores.amax(-1, keepdim=True).clamp(min=-1e30)  # -inf for a fully masked row
    e = (scores - m).exp()
    return (e / e.sum(-1, keepdim=True).clamp(min=1e-30)) @ v


RIGHT = [
    (checks.check_scaled_dot_product_attention, sdpa),
    (checks.check_scaled_dot_product_attention, big_negative),
    (
        checks.check_scaled_dot_product_attention,
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    ),
    (checks.check_causal_mask, lambda T: torch.arange(T)[:, None] >= torch.arange(T)),
    (checks.check_split_heads, lambda x, n: x.unflatten(-1, (n, -1)).permute(0, 2, 1, 3)),
    (checks.check_merge_heads, lambda x: x.permute(0, 2, 1, 3).flatten(2)),
    (checks.check_causal_self_attention, attention_module()),
    (checks.check_causal_self_attention, TorchAttention),
    (checks.check_causal_self_attention, NanoGPTAttention),
    (checks.check_causal_self_attention, DeviceMaskAttention),
    (checks.check_scaled_dot_product_attention, safe_softmax),
]


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


def _stub(*args, **kwargs):
    raise NotImplementedError


class StubAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        raise NotImplementedError


@pytest.mark.parametrize(
    "check, stub",
    [
        (checks.check_scaled_dot_product_attention, _stub),
        (checks.check_causal_mask, _stub),
        (checks.check_split_heads, _stub),
        (checks.check_merge_heads, _stub),
        (checks.check_causal_self_attention, StubAttention),
    ],
)
def test_stub_is_not_done_yet(check, stub):
    assert_stub(check, stub)


def test_the_attention_hints_give_bigger_steps_on_request():
    # The notebook's hint names the step; the check's levels say how, one at a time.
    _, out = run(checks.check_causal_self_attention, StubAttention)
    assert "hint=2" in out and "split(" not in out
    _, out = run(checks.check_causal_self_attention, StubAttention, hint=2)
    assert "split(size, dim)" in out and "hint=3" in out
    _, out = run(checks.check_causal_self_attention, StubAttention, hint=3)
    assert "causal_mask(T)" in out and "still stuck" not in out


# The end of part 3 rewrites the function as one call to torch's kernel: its likely slips.
KERNEL_WRONG = [
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v),
        "mask argument is ignored",
    ),
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "although mask=None",
    ),
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if mask is None else ~mask
        ),
        "the mask is inverted",
    ),
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if mask is None else mask.float()
        ),
        "added to the scores",
    ),
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=1.0
        ),
        "unscaled scores",
    ),
    (
        lambda q, k, v, mask=None: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=0.1
        ),
        "is dropout on?",
    ),
]


@pytest.mark.parametrize("wrong, expect", KERNEL_WRONG, ids=range(len(KERNEL_WRONG)))
def test_the_kernel_rewrites_slips_are_named(wrong, expect):
    assert_wrong(checks.check_scaled_dot_product_attention, wrong, expect)
