"""Checks for part 7: mapping a GPT-2 checkpoint's tensors onto our modules, perplexity."""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from ..metrics import perplexity
from ..model import GPT, GPTConfig
from ..pretrained import convert as reference
from ..pretrained.convert import linear_from_conv1d
from ._core import CheckFailure, call, check, compare_tensors
from .generation import _tiny_model

__all__ = ["check_convert_hf_state_dict", "check_linear_from_conv1d", "check_perplexity"]

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
    config = GPTConfig(vocab_size=20, context_length=12, n_embd=8, n_layer=2, n_head=2)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():  # LayerNorms start at 1 and 0: make every tensor distinct
            p.normal_()
    sd = reference.to_hf_state_dict(model, prefix=prefix)
    n = config.context_length
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
    parts = [
        f"{w} {', '.join(ks[:4])}" for w, ks in (("missing", missing), ("unexpected", extra)) if ks
    ]
    raise CheckFailure("the names differ from our GPT's: " + "; ".join(parts))


@check(
    "convert_hf_state_dict",
    reference.convert_state_dict,
    hints=(
        "Three things differ from our names: a 'transformer.' prefix, mask buffers that are "
        "not weights (names ending in '.attn.bias' or '.attn.masked_bias'), and Conv1D "
        "weights stored as (in, out).",
        "key.removeprefix('transformer.') gives our name; skip the buffers and lm_head.weight "
        "(careful: 'attn.c_attn.bias' is a real parameter); .t() the weights whose names end "
        "with one of CONV1D.",
    ),
)
def check_convert_hf_state_dict(f):
    """Check ``convert_hf_state_dict(hf_sd) -> dict`` (rename, skip buffers, transpose Conv1D)."""
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


@torch.no_grad()
def _token_losses(model: GPT, ids: list[int], window: int, stride: int, *, score_all=False):
    """Every scored token's loss under a windowing scheme (the reference's, or a bug's)."""
    losses = []
    for start in range(0, max(1, len(ids) - 1), stride):
        chunk = torch.tensor([ids[start : start + window + 1]])
        with torch.no_grad():
            logp = model(chunk[:, :-1])[0].log_softmax(-1)
        y = chunk[0, 1:]
        first = 0 if (start == 0 or score_all) else window - stride
        losses += [-logp[t, y[t]].item() for t in range(first, y.numel())]
        if start + window + 1 >= len(ids):
            break
    return losses


@check(
    "perplexity",
    perplexity,
    crash_meanings=[
        (
            r"longer than the model's context|index out of range in self",
            "a window longer than the model's context_length: cap the window with "
            "min(window, model.config.context_length)",
        )
    ],
)
def check_perplexity(f):
    """Check ``perplexity(model, ids, window=1024) -> float`` on a tiny GPT."""
    # A confident model: the bugs move the figure a lot.
    model = _tiny_model(0, 10.0, vocab_size=50, n_embd=16, n_layer=1, n_head=2)
    g = torch.Generator().manual_seed(1)
    short = torch.randint(0, 50, (12,), generator=g).tolist()
    long = torch.randint(0, 50, (45,), generator=g).tolist()
    for ids, label in ((short, "12 ids (one window)"), (long, "45 ids, context_length 16")):
        got = call(f, model, ids, names=["model", "ids"])
        if isinstance(got, torch.Tensor):
            raise CheckFailure(
                "perplexity returned a tensor; return a Python float (.item() or math.exp "
                "of a float)"
            )
        if not isinstance(got, float | int):
            raise CheckFailure(f"perplexity returned a {type(got).__name__}; return a float")
        W = min(1024, model.config.context_length)
        nll = _token_losses(model, ids, W, W // 2)
        mean = sum(nll) / len(nll)
        with torch.no_grad():
            x = torch.tensor([ids[: W + 1][:-1]])
            unshifted = F.cross_entropy(model(x)[0], x[0]).item()
        every = _token_losses(model, ids, W, W // 2, score_all=True)
        apart = _token_losses(model, ids, W, W)
        bugs = [
            ("this is the mean cross-entropy; the perplexity is its exponential", mean),
            (
                "the exponential of the summed loss; average over the tokens first",
                math.exp(min(sum(nll), 700.0)),
            ),
            (
                "each position is scored against itself; the target is the next token "
                "(the ids shifted by one)",
                math.exp(unshifted),
            ),
            (
                "the windows' overlapping halves are scored twice; after the first "
                "window, score only the second half (targets of the rest = -100)",
                math.exp(sum(every) / len(every)),
            ),
            (
                "the windows do not overlap, so the first tokens of each window are "
                "scored with almost no context; step by half a window",
                math.exp(sum(apart) / len(apart)),
            ),
            ("a base-2 exponential; perplexity is exp() of a loss in nats", 2.0**mean),
        ]
        if len(ids) > W + 1:
            first_only = _token_losses(model, ids[: W + 1], W, W // 2)
            bugs.append(
                (
                    "only the first window is scored: walk windows to the end of ids",
                    math.exp(sum(first_only) / len(first_only)),
                )
            )
        compare_tensors(
            torch.tensor(float(got), dtype=torch.float64),
            torch.tensor(math.exp(mean), dtype=torch.float64),
            what=f"perplexity of {label}",
            rtol=1e-4,
            atol=1e-6,
            likely_bugs=[(h, torch.tensor(v, dtype=torch.float64)) for h, v in bugs],
        )


@check("linear_from_conv1d", linear_from_conv1d)
def check_linear_from_conv1d(f):
    """Check ``linear_from_conv1d(weight, bias) -> nn.Linear`` against Conv1D's x @ W + b."""
    g = torch.Generator().manual_seed(0)
    # Not square (like c_attn: 768 -> 2304), then square (like attn.c_proj: 768 -> 768).
    for n_in, n_out in ((6, 18), (8, 8)):
        w = torch.randn(n_in, n_out, generator=g)
        b = torch.randn(n_out, generator=g)
        layer = call(f, w, b, names=["weight", "bias"])
        if not isinstance(layer, torch.nn.Linear):
            raise CheckFailure(f"return an nn.Linear, got {type(layer).__name__}")
        kind = "square " if n_in == n_out else ""
        if tuple(layer.weight.shape) != (n_out, n_in):
            raise CheckFailure(
                f"for a {kind}Conv1D weight of shape ({n_in}, {n_out}) the nn.Linear's weight "
                f"has shape {tuple(layer.weight.shape)}, expected ({n_out}, {n_in}): "
                "nn.Linear keeps (out_features, in_features)"
            )
        x = torch.randn(2, 3, n_in, generator=g)
        with torch.no_grad():
            got = layer(x)
        want = x @ w + b  # what Conv1D computes
        bugs = [("the bias is missing (or left at its random start)", x @ w)]
        if n_in != n_out:
            bugs.append(
                (
                    "the weight is reshaped (or viewed) to (out, in), which keeps the "
                    "numbers in memory order and mixes them up; a transpose swaps the axes",
                    x @ w.reshape(n_out, n_in).t() + b,
                )
            )
        else:  # only a square weight can be left untransposed and still fit
            bugs.append(
                (
                    "the weight is not transposed: a square Conv1D weight fits nn.Linear's "
                    "shape, but Conv1D computes x @ W and nn.Linear x @ W.T",
                    x @ w.t() + b,
                )
            )
        if layer.bias is not None and not torch.equal(layer.bias.detach(), b):
            bugs.append(
                (
                    "the bias is left at nn.Linear's random start: copy it in",
                    x @ w + layer.bias.detach(),
                )
            )
        compare_tensors(got, want, what=f"output of the {kind}layer", likely_bugs=bugs)
