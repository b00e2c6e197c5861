"""Checks for part 7: mapping a GPT-2 checkpoint's tensors onto our modules."""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from .. import pretrained as reference
from ..model import GPT, GPTConfig
from ._core import CheckFailure, call, compare_tensors, run_check

__all__ = ["check_convert_hf_state_dict"]

_TRANSPOSE_HINT = (
    "{name} comes from a Conv1D layer, which stores its weight as (in, out); nn.Linear "
    "wants (out, in), so transpose it with .t()"
)
_SQUARE_HINT = (
    "{name} is square, so a missing transpose keeps the shape but not the values: it is a "
    "Conv1D weight like c_attn and c_fc, transpose it too"
)
_EXTRA_TRANSPOSE_HINT = (
    "{name} is not a Conv1D weight; only attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj "
    "weights are transposed (embeddings and LayerNorms are stored as our modules want them)"
)


def _sample_checkpoint(prefix: str) -> dict[str, torch.Tensor]:
    """A tiny GPT-2 checkpoint in the given key layout, with the mask buffers old files hold."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=20, n_positions=12, n_embd=8, n_layer=2, n_head=2)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():  # LayerNorms start at 1 and 0: make every tensor distinct
            p.normal_()
    sd = reference.to_hf_state_dict(model, prefix=prefix)
    n = config.n_positions
    for i in range(config.n_layer):
        sd[f"{prefix}h.{i}.attn.bias"] = torch.ones(n, n).tril().view(1, 1, n, n)
        sd[f"{prefix}h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if prefix:
        sd["lm_head.weight"] = sd[prefix + "wte.weight"]  # as transformers' state_dict() has it
    return sd


def _key_problems(got: dict, expected: dict) -> None:
    """Raise naming the likely bug when the learner's names differ from the reference's."""
    have = set(got) - {"lm_head.weight"}  # the tied head may be kept or left out
    want = set(expected)
    if have == want:
        return
    extra, missing = sorted(have - want), sorted(want - have)
    if any(k.startswith("transformer.") for k in extra):
        raise CheckFailure(
            "some names still start with 'transformer.'; our GPT has wte, h, ln_f at the top "
            "level, so strip that prefix (key.removeprefix('transformer.'))"
        )
    if any(re.fullmatch(r"h\.\d+\.attn\.(bias|masked_bias)", k) for k in extra):
        raise CheckFailure(
            "the attn.bias / attn.masked_bias buffers were kept; they are the causal mask saved "
            "by older code, not weights (our attention builds its mask), so skip them"
        )
    if any(k.endswith("attn.c_attn.bias") for k in missing):
        raise CheckFailure(
            "attn.c_attn.bias is missing: it is a real parameter (the q, k, v biases). Skip "
            "only names that end with '.attn.bias' or '.attn.masked_bias' exactly"
        )
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:4])}")
    if extra:
        parts.append(f"unexpected {', '.join(extra[:4])}")
    raise CheckFailure("the names differ from our GPT's: " + "; ".join(parts))


def check_convert_hf_state_dict(convert_hf_state_dict: Callable, hint: int = 1) -> Callable:
    """Check ``convert_hf_state_dict(hf_sd) -> dict`` (rename, skip buffers, transpose Conv1D)."""

    def test(f):
        for prefix, layout in (
            ("transformer.", "transformers' layout"),
            ("", "the hub file's layout"),
        ):
            sd = _sample_checkpoint(prefix)
            got = call(f, sd, names=["hf_sd"])
            if not isinstance(got, dict):
                raise CheckFailure(f"return a dict of name -> tensor, got {type(got).__name__}")
            expected = reference.convert_state_dict(sd)
            _key_problems(got, expected)
            for name, want in expected.items():
                raw = sd[prefix + name]
                bugs = []
                if reference.is_conv1d(name):
                    hint = _SQUARE_HINT if raw.shape[0] == raw.shape[1] else _TRANSPOSE_HINT
                    bugs.append((hint.format(name=name), raw))
                elif raw.dim() == 2:
                    bugs.append((_EXTRA_TRANSPOSE_HINT.format(name=name), raw.t()))
                compare_tensors(
                    got[name],
                    want,
                    what=f"{name} (from {layout})",
                    atol=0,
                    rtol=0,
                    likely_bugs=bugs,
                )
            if "lm_head.weight" in got and not torch.equal(
                got["lm_head.weight"], expected["wte.weight"]
            ):
                raise CheckFailure(
                    "lm_head.weight must be wte.weight: GPT-2 ties them (or leave it out)"
                )

    return run_check(
        "convert_hf_state_dict",
        convert_hf_state_dict,
        reference.convert_state_dict,
        test,
        hint=hint,
    )
