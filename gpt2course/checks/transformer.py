"""Checks for the exercises of part 4: LayerNorm, GELU, the MLP and the transformer block."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import model as reference
from ._core import CheckFailure, call, check, compare_tensors

__all__ = ["check_block", "check_gelu", "check_layer_norm", "check_mlp"]


def _config() -> reference.GPTConfig:
    return reference.GPTConfig(vocab_size=50, context_length=16, n_embd=12, n_layer=1, n_head=3)


def _layer_norm_ref(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


@check("layer_norm", _layer_norm_ref)
def check_layer_norm(f):
    """Check ``layer_norm(x, weight, bias, eps=1e-5)`` against ``torch.nn.functional.layer_norm``."""
    g = torch.Generator().manual_seed(0)
    C = 8
    # Rows of very different scales: one with a tiny variance shows where eps goes.
    x = torch.randn(2, 4, C, generator=g) * torch.tensor([1e-3, 0.5, 3.0, 20.0])[:, None]
    x = x + 5.0
    w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
    # Two eps values, so that one written into the function does not pass.
    for eps in (1e-5, 1e-2):
        got = call(f, x, w, b, eps, names=["x", "weight", "bias"])
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        bugs = [
            (
                "the variance is the unbiased one (divides by C - 1); LayerNorm divides by C",
                (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b,
            ),
            (
                "eps is added to the standard deviation; it goes inside the square root",
                (x - mean) / (var.sqrt() + eps) * w + b,
            ),
            (
                "eps is missing: without it a row of (almost) equal values divides by "
                "(almost) zero",
                (x - mean) / var.sqrt() * w + b,
            ),
            ("the weight (gain) and bias are not applied", (x - mean) / torch.sqrt(var + eps)),
            ("the bias is not added", (x - mean) / torch.sqrt(var + eps) * w),
            (
                "the statistics are taken over the wrong axis; normalise each position's "
                "vector: mean and variance over the last dimension (dim=-1)",
                _layer_norm_ref(x.transpose(-1, -2).contiguous(), None, None, eps).transpose(-1, -2)
                * w
                + b,
            ),
            ("the mean is not subtracted", x / torch.sqrt(var + eps) * w + b),
            (
                "weight and bias are swapped: the gain multiplies, the bias is added",
                (x - mean) / torch.sqrt(var + eps) * b + w,
            ),
        ]
        if eps != 1e-5:
            bugs.append(
                (
                    "the eps argument is ignored (a fixed 1e-5 is used); use the eps you are given",
                    _layer_norm_ref(x, w, b, 1e-5),
                )
            )
        compare_tensors(
            got,
            _layer_norm_ref(x, w, b, eps),
            what=f"normalised output (eps={eps:g})",
            atol=1e-4,
            likely_bugs=bugs,
        )


def _gelu_tanh(x: torch.Tensor, c: float = math.sqrt(2 / math.pi), cube: float = 0.044715):
    return 0.5 * x * (1 + torch.tanh(c * (x + cube * x**3)))


def _gelu_ref(x):
    return F.gelu(x, approximate="tanh")


@check("gelu", _gelu_ref)
def check_gelu(f):
    """Check ``gelu(x)`` against torch's GELU in the tanh form GPT-2 uses."""
    x = torch.linspace(-6, 6, 240, dtype=torch.float64).reshape(3, 80, 1).expand(3, 80, 2)
    got = call(f, x, names=["x"])
    bugs = [
        (
            "this is the sigmoid approximation x * sigmoid(1.702 x); GPT-2 uses the tanh "
            "form, and its weights expect it",
            x * torch.sigmoid(1.702 * x),
        ),
        (
            "the cubic term uses x ** 2; it is 0.044715 x ** 3",
            0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**2))),
        ),
        (
            "this is the exact (erf) GELU; GPT-2 was trained with the tanh approximation "
            "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), and its weights expect it",
            F.gelu(x),
        ),
        (
            "the constant is sqrt(pi/2); it is sqrt(2/pi)",
            _gelu_tanh(x, c=math.sqrt(math.pi / 2)),
        ),
        ("the cubic term 0.044715 x^3 is missing", _gelu_tanh(x, cube=0.0)),
        ("the leading 0.5 is missing", 2 * _gelu_tanh(x)),
        ("this is ReLU, not GELU", torch.relu(x)),
        ("this is SiLU (x * sigmoid(x)), not GELU", F.silu(x)),
        (
            "the leading x is missing: GELU is x times a smooth step, 0.5 x (1 + tanh(...))",
            _gelu_tanh(x) / x,
        ),
    ]
    expected = _gelu_ref(x)
    try:
        compare_tensors(got, expected, what="GELU output", atol=1e-6, rtol=1e-6, likely_bugs=bugs)
    except CheckFailure as e:
        # Close but not exact, and no known bug: a constant typed with a digit off.
        near = isinstance(got, torch.Tensor) and got.shape == expected.shape
        if "Likely bug" in str(e) or not (near and torch.allclose(got, expected, atol=1e-2)):
            raise
        raise CheckFailure(
            f"{e}. Likely bug: a constant is slightly off; GPT-2's are sqrt(2/pi) = "
            "0.7978845608... (math.sqrt(2 / math.pi)) and 0.044715, digit for digit"
        ) from None


def _modules(ref_cls: type, cls: type, config, names: tuple[str, ...], seed: int = 0):
    """(reference, learner's) modules of ``config`` in eval mode; the reference with non-trivial
    LayerNorm gains and biases, so forgetting one shows, the learner's with GPT-2's ``names``."""
    torch.manual_seed(0)
    ref = ref_cls(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("bias") or ".ln_" in f".{name}":
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    mine = cls(config)
    missing = [n for n in names if not hasattr(mine, n)]
    if missing:
        raise CheckFailure(
            f"{cls.__name__} has no {', '.join(missing)}; use GPT-2's names "
            f"({', '.join(names)}) so the checkpoint's weights can load into it"
        )
    return ref, mine.eval()


def _check_norms(mine: nn.Module, config, names: tuple[str, ...]) -> None:
    """GPT-2's LayerNorms: one per sublayer, each with a gain, a bias and eps=1e-5. A wrong eps
    changes the output by too little to be sure of from the output alone."""
    norms = [getattr(mine, n, None) for n in names]
    for i, a in enumerate(norms):
        for j in range(i):
            if a is not None and a is norms[j]:
                raise CheckFailure(
                    f"{names[j]} and {names[i]} are the same LayerNorm (self.{names[i]} = "
                    f"self.{names[j]}?): each sublayer has its own, with its own weights; "
                    "make a new nn.LayerNorm for each"
                )
    for name, norm in zip(names, norms, strict=True):
        if isinstance(norm, getattr(nn, "RMSNorm", ())):
            raise CheckFailure(
                f"{name} is an RMSNorm; GPT-2 uses LayerNorm, which also subtracts the mean "
                "and has a bias: nn.LayerNorm(n_embd)"
            )
        if not isinstance(norm, nn.LayerNorm):
            _check_eps(name, getattr(norm, "eps", None), config)
            continue  # your own LayerNorm module: judged by its output
        if not norm.elementwise_affine:
            raise CheckFailure(
                f"{name} = nn.LayerNorm(..., elementwise_affine=False) has no weight and no "
                "bias; GPT-2's LayerNorms learn both: leave elementwise_affine=True (the default)"
            )
        if norm.bias is None:
            raise CheckFailure(
                f"{name} = nn.LayerNorm(..., bias=False) has no bias; GPT-2's LayerNorms have "
                "one: leave bias=True (the default)"
            )
        _check_eps(name, norm.eps, config)


def _check_eps(name: str, eps: object, config) -> None:
    if isinstance(eps, float) and eps != config.layer_norm_epsilon:
        raise CheckFailure(
            f"{name} has eps={eps:g}; GPT-2's LayerNorms use "
            f"eps={config.layer_norm_epsilon:g} (nn.LayerNorm's default), and its "
            "weights expect it"
        )


def _with_eps(ref: nn.Module, eps: float) -> nn.Module:
    """A copy of ``ref`` whose LayerNorms use ``eps``: the output of a wrong eps."""
    wrong = copy.deepcopy(ref)
    for m in wrong.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = eps
    return wrong


def _copy_weights(ref: nn.Module, mine: nn.Module) -> None:
    """Give the learner's module the reference's weights (by name, as a checkpoint would)."""
    theirs = mine.state_dict()
    for k, v in theirs.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckFailure(
                f"{k} holds NaN or inf before any input: is a parameter left uninitialised "
                "(torch.empty without an init)?"
            )
    for k, v in ref.state_dict().items():
        if k not in theirs:
            extra = (
                " GPT-2's layers have biases: leave bias=True (the default)"
                if k.endswith(".bias")
                else " Name the layers as GPT-2 does."
            )
            raise CheckFailure(f"the module has no parameter {k!r}.{extra}")
        if theirs[k].shape != v.shape:
            raise CheckFailure(
                f"{k} has shape {tuple(theirs[k].shape)}, expected {tuple(v.shape)}; "
                "the MLP expands n_embd to 4 * n_embd and projects back"
            )
    mine.load_state_dict(ref.state_dict(), strict=False)


@check("MLP", reference.MLP)
def check_mlp(cls):
    """Check an ``MLP(config)`` class (``c_fc``, GELU, ``c_proj``) against the reference."""
    config = _config()
    ref, mine = _modules(reference.MLP, cls, config, ("c_fc", "c_proj"))
    _copy_weights(ref, mine)
    x = torch.randn(2, 5, config.n_embd, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = call(mine, x, names=["x"])
        h = ref.c_fc(x)
        bugs = [
            (
                "the activation is the sigmoid approximation of GELU; GPT-2 uses the tanh form",
                ref.c_proj(h * torch.sigmoid(1.702 * h)),
            ),
            (
                "the activation is applied after c_proj too; GPT-2's MLP is c_fc, GELU, c_proj",
                F.gelu(ref.c_proj(F.gelu(h, approximate="tanh")), approximate="tanh"),
            ),
            (
                "the activation is the exact (erf) GELU; GPT-2 uses the tanh form "
                "(F.gelu has an approximate= option)",
                ref.c_proj(F.gelu(h)),
            ),
            ("the activation is ReLU; GPT-2 uses GELU (tanh form)", ref.c_proj(torch.relu(h))),
            ("there is no activation between c_fc and c_proj", ref.c_proj(h)),
            (
                "c_proj is missing: project the 4 * n_embd features back to n_embd",
                F.gelu(h, approximate="tanh"),
            ),
        ]
        compare_tensors(got, ref(x), what="MLP output", atol=1e-5, likely_bugs=bugs)


@check("Block", reference.Block)
def check_block(cls):
    """Check a ``Block(config)`` class (pre-LN: attention then MLP, each with a residual)."""
    config = _config()
    ref, mine = _modules(reference.Block, cls, config, ("ln_1", "attn", "ln_2", "mlp"))
    _check_norms(mine, config, ("ln_1", "ln_2"))
    _copy_weights(ref, mine)
    x = torch.randn(2, 6, config.n_embd, generator=torch.Generator().manual_seed(1))
    x[1] *= 0.01  # a small variance, where LayerNorm's eps shows
    with torch.no_grad():
        got = call(mine, x, names=["x"])
        attn = ref.attn

        bugs = [
            (
                (
                    "this is a post-LN block (it normalises after adding); GPT-2 is pre-LN",
                    "in a pre-LN block each sublayer reads a normalised copy of x, and its "
                    "output is added to x itself: the residual stream is never normalised "
                    "inside the block",
                ),
                (lambda a: ref.ln_2(a + ref.mlp(a)))(ref.ln_1(x + attn(x))),
            ),
            (
                (
                    "the residual connections are missing: x should carry on past each sublayer",
                    "each sublayer's output is added to its input x (x plus what the "
                    "sublayer computed), it does not replace x",
                ),
                ref.mlp(ref.ln_2(attn(ref.ln_1(x)))),
            ),
            (
                (
                    "the MLP's residual is missing",
                    "the MLP's output is added to the x it was computed from, as the "
                    "attention's is",
                ),
                ref.mlp(ref.ln_2(x + attn(ref.ln_1(x)))),
            ),
            (
                (
                    "the attention's residual is missing",
                    "the attention's output is added to the block's input x, as the MLP's is",
                ),
                (lambda a: a + ref.mlp(ref.ln_2(a)))(attn(ref.ln_1(x))),
            ),
            (
                "ln_1 is used before the MLP too; each sublayer has its own LayerNorm",
                (lambda a: a + ref.mlp(ref.ln_1(a)))(x + attn(ref.ln_1(x))),
            ),
            (
                "the sublayers read x without normalising it; each reads its LayerNorm's output",
                (lambda a: a + ref.mlp(a))(x + attn(x)),
            ),
            (
                "the MLP reads the block's input x, not x after the attention's residual",
                x + attn(ref.ln_1(x)) + ref.mlp(ref.ln_2(x)),
            ),
            (
                "one LayerNorm's weights serve both sublayers (self.ln_2 = self.ln_1?): each "
                "sublayer has its own LayerNorm",
                (lambda a: a + ref.mlp(ref.ln_2(a)))(x + attn(ref.ln_2(x))),
            ),
            *[
                (
                    f"the LayerNorms' eps is {eps:g}; GPT-2's is 1e-5 (nn.LayerNorm's default)",
                    _with_eps(ref, eps)(x),
                )
                for eps in (1e-6, 1e-12, 1e-8)
            ],
        ]
        compare_tensors(got, ref(x), what="block output", atol=1e-5, likely_bugs=bugs)
