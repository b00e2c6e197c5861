"""The checks of notebook 04: LayerNorm, GELU, the MLP and the block."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import checks
from gpt2course.attention import CausalSelfAttention

from .conftest import assert_right, assert_stub, assert_wrong

# --- layer_norm -------------------------------------------------------------------------------


def ln(x, weight, bias, eps=1e-5, bug=None):
    mean = x.mean(1 if bug == "axis1" else -1, keepdim=True)
    var = ((x - mean) ** 2).mean(1 if bug == "axis1" else -1, keepdim=True)
    if bug == "unbiased":
        var = x.var(-1, keepdim=True)
    if bug == "fixed_eps":
        eps = 1e-5
    if bug == "no_mean":
        mean = 0
    if bug == "eps_on_std":
        h = (x - mean) / (var.sqrt() + eps)
    elif bug == "no_eps":
        h = (x - mean) / var.sqrt()
    else:
        h = (x - mean) / torch.sqrt(var + eps)
    if bug == "no_affine":
        return h
    return h * weight if bug == "no_bias" else h * weight + bias


def ln_in_place(x, weight, bias, eps=1e-5):
    x -= x.mean(-1, keepdim=True)
    return x / torch.sqrt((x**2).mean(-1, keepdim=True) + eps) * weight + bias


LN_WRONG = [
    ("unbiased", "unbiased"),
    ("eps_on_std", "added to the standard deviation"),
    ("no_eps", "eps is missing"),
    ("no_affine", "weight (gain) and bias are not applied"),
    ("no_bias", "the bias is not added"),
    ("axis1", "wrong axis"),
    ("no_mean", "the mean is not subtracted"),
    ("fixed_eps", "the eps argument is ignored"),
]


@pytest.mark.parametrize("bug, expect", LN_WRONG, ids=[b for b, _ in LN_WRONG])
def test_layer_norm_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_layer_norm, lambda x, w, b, eps=1e-5: ln(x, w, b, eps, bug), expect)


def test_layer_norm_in_place_is_named():
    assert_wrong(checks.check_layer_norm, ln_in_place, "`x` in place")


# --- gelu -------------------------------------------------------------------------------------

C = math.sqrt(2 / math.pi)
GELU_WRONG = [
    (lambda x: F.gelu(x), "exact (erf) GELU"),
    (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(math.pi / 2) * (x + 0.044715 * x**3))), "sqrt(pi/2)"),
    (lambda x: 0.5 * x * (1 + torch.tanh(C * x)), "cubic term 0.044715 x^3 is missing"),
    (lambda x: x * (1 + torch.tanh(C * (x + 0.044715 * x**3))), "leading 0.5"),
    (lambda x: torch.relu(x), "ReLU"),
    (lambda x: x * torch.sigmoid(1.702 * x), "sigmoid approximation"),
    (lambda x: 0.5 * x * (1 + torch.tanh(C * (x + 0.044715 * x**2))), "uses x ** 2"),
    # A constant off in its fourth digit: close, and still wrong for GPT-2's weights.
    (lambda x: 0.5 * x * (1 + torch.tanh(C * (x + 0.04475 * x**3))), "0.044715"),
    (lambda x: 0.5 * x * (1 + torch.tanh(0.7989 * (x + 0.044715 * x**3))), "0.7978845608"),
    (lambda x: x * torch.sigmoid(x), "SiLU"),
    (lambda x: 0.5 * (1 + torch.tanh(C * (x + 0.044715 * x**3))), "the leading x"),
]  # fmt: skip


@pytest.mark.parametrize("wrong, expect", GELU_WRONG, ids=[e for _, e in GELU_WRONG])
def test_gelu_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_gelu, wrong, expect)


# --- MLP --------------------------------------------------------------------------------------


def mlp(bug=None):
    class MLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            C = config.n_embd
            hidden = C if bug == "narrow" else 4 * C
            self.c_fc = nn.Linear(C, hidden, bias=bug != "no_bias")
            self.c_proj = nn.Linear(hidden, C)

        def forward(self, x):
            h = self.c_fc(x)
            act = {
                "erf": F.gelu,
                "relu": torch.relu,
                "none": lambda t: t,
                "sigmoid": lambda t: t * torch.sigmoid(1.702 * t),
            }.get(bug, lambda t: F.gelu(t, approximate="tanh"))
            if bug == "no_proj":
                return act(h)
            y = self.c_proj(act(h))
            return act(y) if bug == "twice" else y

    return MLP


MLP_WRONG = [
    ("erf", "exact (erf) GELU"),
    ("relu", "ReLU"),
    ("none", "no activation"),
    ("no_proj", "c_proj is missing"),
    ("narrow", "expands n_embd to 4 * n_embd"),
    ("sigmoid", "sigmoid approximation"),
    ("no_bias", "leave bias=True"),
    ("twice", "applied after c_proj too"),
]


@pytest.mark.parametrize("bug, expect", MLP_WRONG, ids=[b for b, _ in MLP_WRONG])
def test_mlp_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_mlp, mlp(bug), expect)


# --- Block ------------------------------------------------------------------------------------


def block(bug=None):
    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            C = config.n_embd
            norm = {
                "eps": lambda: nn.LayerNorm(C, eps=1e-6),
                "no_affine": lambda: nn.LayerNorm(C, elementwise_affine=False),
                "no_ln_bias": lambda: nn.LayerNorm(C, bias=False),
                "rms": lambda: nn.RMSNorm(C),
            }.get(bug, lambda: nn.LayerNorm(C))
            self.ln_1 = norm()
            self.attn = CausalSelfAttention(config)
            self.ln_2 = self.ln_1 if bug == "shared_ln" else norm()
            self.mlp = mlp()(config)

        def forward(self, x):
            a = self.attn

            if bug == "post_ln":
                x = self.ln_1(x + a(x))
                return self.ln_2(x + self.mlp(x))
            if bug == "no_residual":
                return self.mlp(self.ln_2(a(self.ln_1(x))))
            if bug == "no_mlp_residual":
                return self.mlp(self.ln_2(x + a(self.ln_1(x))))
            if bug == "ln1_twice":
                x = x + a(self.ln_1(x))
                return x + self.mlp(self.ln_1(x))
            if bug == "parallel":
                return x + a(self.ln_1(x)) + self.mlp(self.ln_2(x))
            x = x + a(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    return Block


BLOCK_WRONG = [
    ("post_ln", "post-LN"),
    ("no_residual", "residual connections are missing"),
    ("no_mlp_residual", "the MLP's residual is missing"),
    ("ln1_twice", "ln_1 is used before the MLP too"),
    ("parallel", "the MLP reads the block's input x"),
    ("shared_ln", "the same LayerNorm"),
    ("eps", "eps=1e-06"),
    ("no_affine", "elementwise_affine=False"),
    ("no_ln_bias", "bias=False"),
    ("rms", "RMSNorm"),
]


@pytest.mark.parametrize("bug, expect", BLOCK_WRONG, ids=[b for b, _ in BLOCK_WRONG])
def test_block_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_block, block(bug), expect)


def test_block_hints_teach_without_giving_the_line():
    first = assert_wrong(checks.check_block, block("post_ln"), "post-LN")
    second = assert_wrong(checks.check_block, block("post_ln"), "normalised copy", hint=2)
    for out in (first, second):
        assert "x = x +" not in out and "self.attn(self.ln_1(x))" not in out
    assert "hint=2" in first


class LayerNorm(nn.Module):
    """A learner's own LayerNorm module around their layer_norm function."""

    def __init__(self, C):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(C)), nn.Parameter(torch.zeros(C))

    def forward(self, x):
        return ln(x, self.weight, self.bias)


class OwnLayerNormBlock(nn.Module):
    """Right: the block written with the learner's own LayerNorm module (their layer_norm)."""

    def __init__(self, config):
        super().__init__()
        self.ln_1, self.ln_2 = LayerNorm(config.n_embd), LayerNorm(config.n_embd)
        self.attn, self.mlp = CausalSelfAttention(config), mlp()(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class SmallEpsLayerNorm(LayerNorm):
    def forward(self, x):
        return ln(x, self.weight, self.bias, eps=1e-6)


class OwnSmallEpsBlock(OwnLayerNormBlock):
    def __init__(self, config):
        super().__init__(config)
        self.ln_1, self.ln_2 = SmallEpsLayerNorm(config.n_embd), SmallEpsLayerNorm(config.n_embd)


def test_an_eps_written_into_an_own_layer_norm_is_named():
    assert_wrong(checks.check_block, OwnSmallEpsBlock, "eps")


class GivenLayerNorm(nn.Module):
    """Notebook 04's given module: the learner's layer_norm with nn.LayerNorm's parameters."""

    def __init__(self, n_embd, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd))
        self.eps = eps

    def forward(self, x):
        return ln(x, self.weight, self.bias, self.eps)


def given_ln_block(eps):
    class Block(OwnLayerNormBlock):
        def __init__(self, config):
            super().__init__(config)
            self.ln_1 = GivenLayerNorm(config.n_embd, eps=eps)
            self.ln_2 = GivenLayerNorm(config.n_embd, eps=eps)

    return Block


def test_the_given_layer_norm_with_another_eps_is_named():
    assert_wrong(checks.check_block, given_ln_block(1e-6), "ln_1 has eps=1e-06")


RIGHT = [
    (checks.check_layer_norm, ln),
    (checks.check_layer_norm, lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b, eps)),
    (
        checks.check_layer_norm,
        lambda x, w, b, eps=1e-5: (x - x.mean(-1, True)) * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w + b,
    ),
    (checks.check_gelu, lambda x: F.gelu(x, approximate="tanh")),
    (checks.check_gelu, lambda x: x * 0.5 * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))),
    (checks.check_mlp, mlp()),
    (checks.check_block, block()),
    (checks.check_block, OwnLayerNormBlock),
    (checks.check_block, given_ln_block(1e-5)),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


def _stub(*args, **kwargs):
    raise NotImplementedError


class StubMLP(nn.Module):
    def __init__(self, config):
        raise NotImplementedError


@pytest.mark.parametrize(
    "check, stub",
    [
        (checks.check_layer_norm, _stub),
        (checks.check_gelu, _stub),
        (checks.check_mlp, StubMLP),
        (checks.check_block, StubMLP),
    ],
)
def test_stub_is_not_done_yet(check, stub):
    assert_stub(check, stub)


# The end of part 4 rewrites layer_norm and gelu as one call to torch's kernels: their slips.
KERNEL_WRONG = [
    (
        checks.check_layer_norm,
        lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b),
        "the eps argument is ignored",
    ),
    (
        checks.check_layer_norm,
        lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], eps=eps),
        "the weight (gain) and bias are not applied",
    ),
    (
        checks.check_layer_norm,
        lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, eps=eps),
        "the bias is not added",
    ),
    (
        checks.check_layer_norm,
        lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], b, w, eps),
        "weight and bias are swapped",
    ),
    (checks.check_gelu, lambda x: F.gelu(x), "exact (erf) GELU"),
    (checks.check_gelu, lambda x: F.gelu(x, approximate="none"), "exact (erf) GELU"),
]


@pytest.mark.parametrize("check, wrong, expect", KERNEL_WRONG, ids=range(len(KERNEL_WRONG)))
def test_the_kernel_rewrites_slips_are_named(check, wrong, expect):
    assert_wrong(check, wrong, expect)
