"""The checks of notebook 07: mapping a GPT-2 checkpoint's tensors onto our modules."""

import re

import pytest

from gpt2course import checks

from .conftest import assert_right, assert_stub, assert_wrong, run

CONV = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert(sd, *, prefix=True, buffers=True, transpose=CONV, skip=(".attn.bias", ".attn.masked_bias"), all_2d=False, in_place=False, pop=False):  # fmt: skip
    out = {}
    for key, t in list(sd.items()):
        name = key.removeprefix("transformer.") if prefix else key
        if name == "lm_head.weight" or (buffers and name.endswith(skip)):
            continue
        if name.endswith(transpose) or (all_2d and t.dim() == 2):
            t = t.t_() if in_place else t.t()
        out[name] = t
        if pop:
            sd.pop(key)
    return out


WRONG = [
    (lambda sd: convert(sd, transpose=()), "Conv1D layer, which stores its weight as (in, out)"),
    (lambda sd: convert(sd, transpose=CONV[::2]), "attn.c_proj.weight is square"),
    (lambda sd: convert(sd, prefix=False), "strip that prefix"),
    (lambda sd: convert(sd, buffers=False), "buffers were kept"),
    (lambda sd: convert(sd, skip=("attn.bias", "attn.masked_bias")), "attn.c_attn.bias is missing"),
    (lambda sd: convert(sd, all_2d=True), "wte.weight is not a Conv1D weight"),
    (lambda sd: convert(sd, in_place=True), "changed its input `hf_sd` in place"),
    (lambda sd: convert(sd, pop=True), "changed its input `hf_sd` in place"),
    (lambda sd: list(convert(sd).items()), "return a dict"),
]  # fmt: skip


@pytest.mark.parametrize("wrong, expect", WRONG, ids=[e for _, e in WRONG])
def test_convert_wrong_solutions_are_named(wrong, expect):
    assert_wrong(checks.check_convert_hf_state_dict, wrong, expect)


def convert_by_regex(hf_sd):
    """Right, another way: a regex for the names, a set of suffixes for the transposes."""
    out = {}
    for key, t in hf_sd.items():
        name = re.sub(r"^transformer\.", "", key)
        if re.search(r"\.attn\.(masked_)?bias$", name):
            continue
        out[name] = t.t().contiguous() if name.endswith(CONV) else t
    out["lm_head.weight"] = out["wte.weight"]
    return out


@pytest.mark.parametrize("right", [convert, convert_by_regex])
def test_other_right_solutions_pass(right):
    assert_right(checks.check_convert_hf_state_dict, right)


def test_stub_is_not_done_yet():
    def convert_hf_state_dict(hf_sd):
        raise NotImplementedError

    assert_stub(checks.check_convert_hf_state_dict, convert_hf_state_dict)


# --- perplexity -------------------------------------------------------------------------------

import math  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gpt2course.checks.pretrained import perplexity as ref_perplexity  # noqa: E402
from gpt2course.model import GPT, GPTConfig  # noqa: E402


@torch.no_grad()
def ppl(model, ids, window=1024, bug=None):
    window = min(window, model.config.context_length) if bug != "no_cap" else window
    stride = window if bug == "apart" else window // 2
    total, count = 0.0, 0
    for start in range(0, max(1, len(ids) - 1), stride):
        chunk = torch.tensor([ids[start : start + window + 1]])
        x, y = chunk[:, :-1], chunk[:, 1:].clone()
        if bug == "unshifted":
            y = x.clone()
        if start > 0 and bug not in ("every", "apart"):
            y[:, : window - stride] = -100
        loss = F.cross_entropy(model(x)[0], y[0], ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((y != -100).sum())
        if start + window + 1 >= len(ids) or bug == "first_only":
            break
    if bug == "no_exp":
        return total / count
    if bug == "base2":
        return 2 ** (total / count)
    if bug == "tensor":
        return torch.tensor(total / count).exp()
    if bug == "exp_sum":
        return math.exp(min(total, 700.0))
    return math.exp(total / count)


PPL_WRONG = [
    ("no_exp", "this is the mean cross-entropy"),
    ("base2", "base-2"),
    ("tensor", "return a Python float"),
    ("exp_sum", "the exponential of the summed loss"),
    ("unshifted", "scored against itself"),
    ("every", "scored twice"),
    ("apart", "the windows do not overlap"),
    ("first_only", "only the first window is scored"),
    ("no_cap", "cap the window"),
]


@pytest.mark.parametrize("bug, expect", PPL_WRONG, ids=[b for b, _ in PPL_WRONG])
def test_perplexity_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_perplexity, lambda m, i, window=1024: ppl(m, i, window, bug), expect)


def ppl_token_by_token(model, ids, window=1024):
    """Right, another way: each token's loss with exactly the context the windows give it."""
    W = min(window, model.config.context_length)
    S, nll = W // 2, []
    for t in range(1, len(ids)):
        # the window that scores target t: the first, or the one whose second half holds it
        start = 0 if t <= W else ((t - W - 1) // S + 1) * S
        ctx = torch.tensor([ids[start:t]])
        with torch.no_grad():
            nll.append(-model(ctx)[0, -1].log_softmax(-1)[ids[t]].item())
    return math.exp(sum(nll) / len(nll))


@pytest.mark.parametrize("right", [ppl, ppl_token_by_token])
def test_perplexity_right_solutions_pass(right):
    assert_right(checks.check_perplexity, right)


def test_perplexity_reference_is_exp_of_torchs_cross_entropy():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, context_length=8, n_embd=8, n_layer=1, n_head=2)).eval()
    ids = torch.randint(0, 30, (9,)).tolist()  # one window
    with torch.no_grad():
        want = math.exp(F.cross_entropy(model(torch.tensor([ids[:-1]]))[0], torch.tensor(ids[1:])))
    assert math.isclose(ref_perplexity(model, ids), want, rel_tol=1e-5)
    long = torch.randint(0, 30, (40,)).tolist()
    assert math.isclose(ref_perplexity(model, long), ppl_token_by_token(model, long), rel_tol=1e-5)


def test_perplexity_stub_is_not_done_yet():
    def perplexity(model, ids, window=1024):
        raise NotImplementedError

    assert_stub(checks.check_perplexity, perplexity)


# --- linear_from_conv1d -----------------------------------------------------------------------

import torch.nn as nn  # noqa: E402
from transformers.pytorch_utils import Conv1D  # noqa: E402

from gpt2course.checks.pretrained import linear_from_conv1d as ref_linear  # noqa: E402


def linear(weight, bias, bug=None):
    n_in, n_out = weight.shape
    layer = nn.Linear(n_in, n_out, bias=bug != "no_bias")
    with torch.no_grad():
        if bug == "in_place":
            layer.weight.copy_(weight.t_())
        elif bug == "no_transpose":
            layer.weight.copy_(weight.reshape(n_out, n_in))
        elif bug == "square_only":
            layer.weight.copy_(weight if n_in == n_out else weight.t())
        else:
            layer.weight.copy_(weight.t())
        if bug not in ("no_bias", "bias_not_copied"):
            layer.bias.copy_(bias)
    return layer


def linear_swapped(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight = nn.Parameter(weight)
    layer.bias = nn.Parameter(bias)
    return layer


LINEAR_WRONG = [
    ("no_transpose", "a transpose swaps the axes"),
    ("square_only", "a square Conv1D weight fits"),
    ("no_bias", "the bias is missing"),
    ("bias_not_copied", "random start"),
    ("in_place", "changed its input `weight` in place"),
]


@pytest.mark.parametrize("bug, expect", LINEAR_WRONG, ids=[b for b, _ in LINEAR_WRONG])
def test_linear_from_conv1d_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_linear_from_conv1d, lambda w, b: linear(w, b, bug), expect)


def test_linear_from_conv1d_other_wrong_ones():
    assert_wrong(checks.check_linear_from_conv1d, linear_swapped, "nn.Linear keeps (out_features")
    assert_wrong(
        checks.check_linear_from_conv1d, lambda w, b: lambda x: x @ w + b, "return an nn.Linear"
    )


def linear_by_parameters(weight, bias):
    """Right, another way: new Parameters holding the transposed weight."""
    layer = nn.Linear(*weight.shape)
    layer.weight = nn.Parameter(weight.t().contiguous())
    layer.bias = nn.Parameter(bias.clone())
    return layer


@pytest.mark.parametrize("right", [linear, linear_by_parameters])
def test_linear_from_conv1d_right_solutions_pass(right):
    assert_right(checks.check_linear_from_conv1d, right)


def test_linear_from_conv1d_reference_matches_transformers_conv1d():
    conv = Conv1D(nf=10, nx=4)  # transformers' own layer: weight (nx, nf) = (in, out)
    nn.init.normal_(conv.weight)
    nn.init.normal_(conv.bias)
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        assert torch.allclose(ref_linear(conv.weight, conv.bias)(x), conv(x), atol=1e-6)


def test_linear_from_conv1d_stub_is_not_done_yet():
    def linear_from_conv1d(weight, bias):
        raise NotImplementedError

    assert_stub(checks.check_linear_from_conv1d, linear_from_conv1d)


def test_the_converter_hints_give_bigger_steps_on_request():
    def convert_hf_state_dict(hf_sd):
        raise NotImplementedError

    _, out = run(checks.check_convert_hf_state_dict, convert_hf_state_dict, hint=2)
    assert "(in, out)" in out and "removeprefix" not in out
    _, out = run(checks.check_convert_hf_state_dict, convert_hf_state_dict, hint=3)
    assert "removeprefix" in out and ".t()" in out
