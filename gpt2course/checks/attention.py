"""Checks for the exercises of part 3: attention, the causal mask, heads, the full module."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attention as reference
from ..model import GPTConfig
from ._core import CheckFailure, call, check, compare_tensors, require_same_device, say

__all__ = [
    "check_causal_mask",
    "check_causal_self_attention",
    "check_merge_heads",
    "check_scaled_dot_product_attention",
    "check_split_heads",
]

_INVERTED_HINT = (
    "the mask is inverted: True means 'may attend', so the scores to fill with -inf are "
    "those where the mask is False"
)


def _no_key_hint(cause: str) -> tuple[str, str]:
    return (
        "a query that may attend to no key (a mask row with no True) should get zero weights "
        f"and a zero output, as the reference and torch's own kernel give it; {cause}",
        "after the softmax, set the weights of the rows whose mask has no True to 0: "
        "mask.any(dim=-1, keepdim=True) tells which rows have one",
    )


def _attend(q, k, v, mask=None, *, scale=None, mask_after_softmax=False, softmax_dim=-1, fill=None):
    """Attention with knobs that reproduce the usual mistakes; a query that may attend to no
    key gets zero weights, as in the reference (unless ``fill`` is finite)."""
    scale = 1 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None and not mask_after_softmax:
        scores = scores.masked_fill(~mask, float("-inf") if fill is None else fill)
    w = scores.softmax(dim=softmax_dim)
    if mask is not None and mask_after_softmax:
        w = w.masked_fill(~mask, 0.0)
    if mask is not None and fill is None:
        w = w.nan_to_num(0.0)
    return w @ v


def _sdpa_cases():
    """(label, q, k, v, mask): 4-D with no mask, causal and a padding-like mask, then 3-D."""
    g = torch.Generator().manual_seed(0)
    B, H, T, d = 2, 3, 6, 16
    q, k, v = (torch.randn(B, H, T, d, generator=g) for _ in range(3))
    causal = reference.causal_mask(T)
    # Not the causal mask: each row keeps a different set of keys (at least one).
    other = torch.rand(B, 1, T, T, generator=g) > 0.4
    other[..., 0] = True
    q3, k3, v3 = (torch.randn(4, 5, 8, generator=g) for _ in range(3))
    # Queries 2 and 4 may attend to no key (padding can do that): zero weights, not NaN.
    blocked = other.clone()
    blocked[..., 2, :] = False
    blocked[1, ..., 4, :] = False
    return [
        ("(B, H, T, d) inputs without a mask", q, k, v, None),
        ("(B, H, T, d) inputs with the causal mask", q, k, v, causal),
        ("(B, H, T, d) inputs with a (B, 1, T, T) mask that is not causal", q, k, v, other),
        (
            "(B, T, d) inputs (no head axis) with the causal mask",
            q3,
            k3,
            v3,
            reference.causal_mask(5),
        ),
        ("(B, H, T, d) inputs with a mask that lets some queries see no key", q, k, v, blocked),
    ]


@check(
    "scaled_dot_product_attention",
    reference.scaled_dot_product_attention,
    crash_meanings=[
        (
            r"Dimension out of range|must match the size of tensor",
            "a transpose of fixed axes (transpose(2, 3) or (1, 2)): the keys' last two "
            "axes are -2 and -1 whatever the batch shape: k.transpose(-2, -1)",
        )
    ],
)
def check_scaled_dot_product_attention(f):
    """Check ``scaled_dot_product_attention(q, k, v, mask=None)``: any batch shape, any mask."""
    names = ["q", "k", "v"]
    for what, q, k, v, m in _sdpa_cases():
        d = q.size(-1)
        got = call(f, q, k, v, names=names) if m is None else call(f, q, k, v, mask=m, names=names)
        again = f(q, k, v) if m is None else f(q, k, v, mask=m)
        if (
            isinstance(got, torch.Tensor)
            and isinstance(again, torch.Tensor)
            and got.shape == again.shape
            and not torch.allclose(got, again, rtol=0, atol=1e-6, equal_nan=True)
        ):
            raise CheckFailure(
                say(
                    (
                        "the output changes from one call to the next with the same inputs: "
                        "is dropout on? This function has none (dropout_p=0)",
                        "attention's dropout belongs to the module, in training only; here "
                        "the same q, k, v must give the same output every time",
                    )
                )
            )
        what = f"output for {what}"
        unscaled = q @ k.transpose(-2, -1)
        bugs = [
            ("unscaled scores: did you divide by sqrt(d_k)?", _attend(q, k, v, m, scale=1.0)),
            (
                "the scores are divided by d_k; divide by sqrt(d_k)",
                _attend(q, k, v, m, scale=1 / d),
            ),
            (
                (
                    "the softmax runs over the wrong axis; each query's weights over the "
                    "keys must sum to 1",
                    "the keys are the last axis of the scores (..., T_q, T_k): count from "
                    "the end, so that 3-D and 4-D inputs both work",
                ),
                _attend(q, k, v, m, softmax_dim=-2),
            ),
            (
                "the weights are scaled after the softmax; divide the scores by sqrt(d_k) "
                "before it, so that the weights still sum to 1",
                (unscaled if m is None else unscaled.masked_fill(~m, float("-inf")))
                .softmax(-1)
                .nan_to_num(0.0)
                / math.sqrt(d)
                @ v,
            ),
        ]
        if q.dim() == 4:
            bugs.append(
                (
                    "the softmax runs over the heads axis (dim=1) of the 4-D scores; the "
                    "keys are the last axis: count from the end",
                    _attend(q, k, v, m, softmax_dim=1),
                )
            )
        causal = reference.causal_mask(q.size(-2))
        if m is None:
            bugs.append(
                (
                    "the causal mask is applied although mask=None; apply only the mask "
                    "you are given (None means every key may be attended to)",
                    _attend(q, k, v, causal),
                )
            )
        if m is not None:
            bugs += [
                (
                    "the mask is applied after the softmax; fill the masked scores with "
                    "-inf before it, so the remaining weights still sum to 1",
                    _attend(q, k, v, m, mask_after_softmax=True),
                ),
                (
                    "masked scores are set to 0, which still gets weight after the "
                    "softmax; set them to float('-inf')",
                    (unscaled / math.sqrt(d)).masked_fill(~m, 0.0).softmax(-1) @ v,
                ),
                (
                    "the boolean mask is added to the scores (True counts as 1), which "
                    "blocks nothing; fill the blocked scores with -inf (masked_fill)",
                    (unscaled / math.sqrt(d) + m).softmax(-1) @ v,
                ),
                (
                    "the mask argument is ignored: apply the mask you are given",
                    _attend(q, k, v, None),
                ),
            ]
            if not torch.equal(m, causal):
                bugs.append(
                    (
                        "the causal mask is used instead of the mask you are given; the "
                        "caller's mask can be any pattern (padding, a prefix, ...)",
                        _attend(q, k, v, causal),
                    )
                )
        expected = reference.scaled_dot_product_attention(q, k, v, mask=m)
        if m is not None and isinstance(got, torch.Tensor) and got.isnan().any():
            # An inverted mask blocks everything in some rows: their softmax is NaN.
            inverted = _attend(q, k, v, ~m, fill=float("-inf"))
            if got.shape == q.shape and torch.allclose(got, inverted, equal_nan=True):
                raise CheckFailure(_INVERTED_HINT)
            if got.shape == expected.shape:
                nan_rows = got.isnan().any(-1)  # (..., T_q)
                if not (nan_rows & m.any(-1).expand_as(nan_rows)).any():  # only rows seeing no key
                    raise CheckFailure(
                        say(_no_key_hint("the softmax of a row of only -inf is NaN (0/0)"))
                    )
            raise CheckFailure(
                f"the {what} contains NaN: a row whose scores are all -inf has no softmax. "
                "Is the mask inverted? True means 'may attend'."
            )
        if m is not None:
            bugs.append((_INVERTED_HINT, _attend(q, k, v, ~m)))
            if not bool(m.any(-1).all()):
                bugs.append(
                    (
                        _no_key_hint(
                            "a large negative fill (-1e9) gives it the mean of the values"
                        ),
                        _attend(q, k, v, m, fill=-1e9),
                    )
                )
        compare_tensors(got, expected, what=what, likely_bugs=bugs)


@check("causal_mask", reference.causal_mask)
def check_causal_mask(f):
    """Check ``causal_mask(T)``: a boolean (T, T) tensor, True where i may attend to j."""
    for T in (5, 1, 7):
        got = f(T)
        if isinstance(got, torch.Tensor) and got.shape != (T, T):
            extra = (
                "; return (T, T): broadcasting adds the batch and head axes where the mask is used"
                if got.dim() > 2 and got.shape[-2:] == (T, T)
                else "; build it from the argument T, not a fixed size"
            )
            raise CheckFailure(
                f"the mask for T={T} has shape {tuple(got.shape)}, expected ({T}, {T}){extra}"
            )
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
            raise CheckFailure(
                f"the mask should be boolean (True = may attend), got dtype {got.dtype}; "
                "pass dtype=torch.bool to torch.ones, or call .bool()"
            )
        ones = torch.ones(T, T, dtype=torch.bool)
        compare_tensors(
            got,
            reference.causal_mask(T),
            what=f"mask for T={T}",
            atol=0,
            rtol=0,
            likely_bugs=[
                (
                    "the mask is upside down: True must mark the past and the position "
                    "itself, the lower triangle (tril), not the future",
                    ones.triu(),
                ),
                ("the mask is inverted: True means 'may attend', not 'blocked'", ~ones.tril()),
                ("the diagonal is missing: a position may attend to itself", ones.tril(-1)),
            ],
        )


def _heads_input(B=2, T=5, C=12, seed=0):
    return torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed))


@check("split_heads", reference.split_heads)
def check_split_heads(f):
    """Check ``split_heads(x, n_head)``: (B, T, C) -> (B, n_head, T, C // n_head)."""
    # Two head counts, so that a fixed number of heads does not pass.
    for n_head in (3, 4):
        x = _heads_input()
        B, T, C = x.shape
        hd = C // n_head
        got = call(f, x, n_head, names=["x"])
        compare_tensors(
            got,
            reference.split_heads(x, n_head),
            likely_bugs=[
                (
                    "the view goes straight to (B, n_head, T, head_dim), which mixes positions "
                    "and channels; view as (B, T, n_head, head_dim), then transpose(1, 2)",
                    x.reshape(B, n_head, T, hd),
                ),
                (
                    "each head takes every n_head-th channel; a head owns a contiguous slice: "
                    "view as (B, T, n_head, head_dim), not (B, T, head_dim, n_head)",
                    x.view(B, T, hd, n_head).permute(0, 3, 1, 2),
                ),
                (
                    "the head axis is not moved in front of the time axis: transpose(1, 2)",
                    x.view(B, T, n_head, hd),
                ),
                (
                    "n_head and head_dim are swapped: there are n_head heads of C // n_head "
                    "channels each",
                    x.view(B, T, hd, n_head).transpose(1, 2),
                ),
            ],
            what=f"split heads (n_head={n_head})",
        )


@check("merge_heads", reference.merge_heads)
def check_merge_heads(f):
    """Check ``merge_heads(x)``: (B, n_head, T, head_dim) -> (B, T, n_head * head_dim)."""
    # contiguous, like attention's output, so that a missing .contiguous() shows up
    x = reference.split_heads(_heads_input(seed=1), 3).contiguous()  # (B, nh, T, hd)
    B, H, T, D = x.shape
    got = call(f, x, names=["x"])
    compare_tensors(
        got,
        reference.merge_heads(x),
        what="merged heads",
        likely_bugs=[
            (
                "heads merged in the wrong order: transpose(1, 2) back to "
                "(B, T, n_head, head_dim) before flattening the last two axes",
                x.reshape(B, T, H * D),
            ),
            (
                "the heads' channels are interleaved: move n_head next to head_dim with "
                "transpose(1, 2), not a permute that puts head_dim first",
                x.permute(0, 2, 3, 1).reshape(B, T, H * D),
            ),
            (
                "the last two axes are not flattened: the result is (B, T, n_head * head_dim)",
                x.transpose(1, 2),
            ),
            (
                "transpose(1, 3) swaps the heads with head_dim; move T back next to B "
                "with transpose(1, 2)",
                x.transpose(1, 3).reshape(B, T, H * D),
            ),
        ],
    )


def _module_variant(
    sd, x, n_head, *, order="qkv", scale=True, causal=True, merge="right", proj=True, sm=-1
):
    """The module's forward from a state dict, with knobs that reproduce the usual mistakes."""
    B, T, C = x.shape
    hd = C // n_head
    qkv = F.linear(x, sd["c_attn.weight"], sd.get("c_attn.bias")).split(C, dim=2)
    parts = dict(zip(order, qkv, strict=True))
    q, k, v = (reference.split_heads(parts[n], n_head) for n in "qkv")
    y = _attend(
        q,
        k,
        v,
        reference.causal_mask(T) if causal else None,
        scale=1 / math.sqrt(hd) if scale is True else scale,
        softmax_dim=sm,
    )  # (B, nh, T, hd)
    y = reference.merge_heads(y) if merge == "right" else y.reshape(B, T, C)
    return F.linear(y, sd["c_proj.weight"], sd.get("c_proj.bias")) if proj else y


def _load_attention_weights(ref: nn.Module, mine: nn.Module, config: GPTConfig) -> None:
    """Give ``mine`` the reference's weights, or say exactly which names or shapes differ.
    Extra buffers are fine: nanoGPT keeps its mask in one (GPT-2's checkpoints carry attn.bias)."""
    layers = "c_attn = nn.Linear(n_embd, 3 * n_embd) and c_proj = nn.Linear(n_embd, n_embd)"
    want, theirs = ref.state_dict(), mine.state_dict()
    params = dict(mine.named_parameters())
    extra = [k for k in params if k not in want]
    if extra:
        n = config.context_length
        mask_like = [k for k in extra if params[k].dim() >= 2 and params[k].shape[-2:] == (n, n)]
        why = (
            f" {mask_like[0]} looks like a mask: a mask is not learned, so keep it with "
            "self.register_buffer(...) (it moves with the module and is not trained)"
            if mask_like
            else ""
        )
        raise CheckFailure(
            f"the module should hold exactly two layers, named like GPT-2's: {layers}; it also "
            f"has the parameter(s) {', '.join(extra)}.{why}"
        )
    missing = [k for k in want if k not in theirs]
    if missing:
        extra_hint = (
            " GPT-2's layers have biases: leave bias=True (the default)"
            if all(k.endswith(".bias") for k in missing)
            else f" GPT-2's attention holds exactly two layers: {layers}"
        )
        raise CheckFailure(f"the module has no {', '.join(missing)}.{extra_hint}")
    for k, v in want.items():
        if theirs[k].shape != v.shape:
            raise CheckFailure(
                f"{k} has shape {tuple(theirs[k].shape)}, expected {tuple(v.shape)}: {layers}"
            )
    mine.load_state_dict(want, strict=False)


@check(
    "CausalSelfAttention",
    reference.CausalSelfAttention,
    hints=(
        "c_attn gives (B, T, 3C): q, k and v side by side on the last axis, in that order; "
        "tensor.split(size, dim) cuts an axis into pieces of that size.",
        "Cut c_attn(x) into three (B, T, C) pieces along dim 2, split_heads each, attend with "
        "causal_mask(T), merge_heads, then c_proj.",
    ),
)
def check_causal_self_attention(cls):
    """Check a ``CausalSelfAttention(config)`` module whose ``forward(x)`` returns y (B, T, C)."""
    config = GPTConfig(
        vocab_size=16, context_length=16, n_embd=32, n_layer=1, n_head=4, dropout=0.0
    )
    torch.manual_seed(0)
    ref = reference.CausalSelfAttention(config).eval()
    try:
        mine = cls(config).eval()
    except TypeError as e:
        raise CheckFailure(f"CausalSelfAttention(config) could not be built: {e}") from None
    _load_attention_weights(ref, mine, config)
    x = torch.randn(2, 7, config.n_embd, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = call(mine, x, names=["x"])
        sd, nh = ref.state_dict(), config.n_head
        bugs = [
            (
                "no causal mask: each position also sees the ones after it; "
                "pass mask=causal_mask(T)",
                _module_variant(sd, x, nh, causal=False),
            ),
            (
                "unscaled scores: did you divide by sqrt(d_k)?",
                _module_variant(sd, x, nh, scale=1.0),
            ),
            (
                "the scores are scaled by sqrt(n_embd); each head scales by sqrt(head_dim) "
                "= sqrt(n_embd // n_head)",
                _module_variant(sd, x, nh, scale=1 / math.sqrt(config.n_embd)),
            ),
            (
                "heads merged in the wrong order: transpose(1, 2) back to "
                "(B, T, n_head, head_dim) before the view to (B, T, C)",
                _module_variant(sd, x, nh, merge="wrong"),
            ),
            *[
                (
                    "c_attn's output is split in the wrong order; GPT-2's layout is q, k, v",
                    _module_variant(sd, x, nh, order=order),
                )
                for order in ("kqv", "qvk")
            ],
            (
                "c_proj is not applied: project the merged heads with self.c_proj",
                _module_variant(sd, x, nh, proj=False),
            ),
            (
                "the softmax runs over the wrong axis of the (B, n_head, T, T) scores; "
                "each query's weights over the keys (the last axis) sum to 1",
                _module_variant(sd, x, nh, sm=-2),
            ),
            (
                "the softmax runs over the heads axis (dim=1); the keys are the last axis",
                _module_variant(sd, x, nh, sm=1),
            ),
        ]
        compare_tensors(got, ref(x), what="output", likely_bugs=bugs)
    require_same_device(mine, x)
