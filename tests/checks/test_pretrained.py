"""The checks of notebook 07: mapping a GPT-2 checkpoint's tensors onto our modules."""

import re

import pytest

from gpt2course import checks

from .conftest import assert_right, assert_stub, assert_wrong

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
