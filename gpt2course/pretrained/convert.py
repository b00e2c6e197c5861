"""GPT-2's checkpoint names and shapes, and the conversion into our ``GPT``.

GPT-2's checkpoint was written for a TensorFlow model whose linear layers were "Conv1D"s
storing their weight as (in, out); ``nn.Linear`` stores (out, in). So four weights per block
are transposed on the way in: ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``.
Every other name and shape already matches our modules, because ``model.py`` uses the
checkpoint's names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..config import MODEL_NAMES, SIZES, GPTConfig
from ..files import CheckpointError
from ..model import GPT

# The hub names of the four sizes (config.SIZES); the short names are what the course uses.
HUB_REPOS = {name: f"openai-community/{name}" for name in MODEL_NAMES}


WEIGHTS_FILE = "model.safetensors"


CONFIG_FILE = "config.json"


# Stored as (in, out) by GPT-2's Conv1D; nn.Linear wants (out, in).
CONV1D_WEIGHTS = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)


# The causal mask that old checkpoints saved as buffers. Not weights: our attention builds
# its mask on the fly. (``attn.c_attn.bias`` is a real parameter and must not match.)
_MASK_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


# config.json key holding our full GPTConfig (dropout, bias) beside transformers' own keys.
OUR_CONFIG_KEY = "gpt2course_config"


def config_from_hf(hf_config: Mapping[str, Any] | Any) -> GPTConfig:
    """Our ``GPTConfig`` from a transformers ``GPT2Config`` or its ``config.json`` dict."""
    get = (
        hf_config.get
        if isinstance(hf_config, Mapping)
        else lambda k, d=None: getattr(hf_config, k, d)
    )
    model_type = get("model_type", "gpt2")
    if model_type != "gpt2":
        raise CheckpointError(f"this is a {model_type!r} checkpoint, not GPT-2 ('gpt2')")
    n_embd = get("n_embd", 768)
    # Variants our model does not implement: refuse rather than load them wrongly.
    unsupported = {
        "activation_function": (
            get("activation_function", "gelu_new"),
            ("gelu_new", "gelu_pytorch_tanh"),
        ),
        "n_inner": (get("n_inner", None), (None, 4 * n_embd)),
        "scale_attn_weights": (get("scale_attn_weights", True), (True,)),
        "scale_attn_by_inverse_layer_idx": (
            get("scale_attn_by_inverse_layer_idx", False),
            (False,),
        ),
        "tie_word_embeddings": (get("tie_word_embeddings", True), (True,)),
        "add_cross_attention": (get("add_cross_attention", False), (False,)),
    }
    for key, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise CheckpointError(
                f"config.json has {key}={value!r}; our GPT implements only {allowed[0]!r}"
            )
    return GPTConfig(
        vocab_size=get("vocab_size", 50257),
        n_positions=get("n_positions", 1024),
        n_embd=n_embd,
        n_layer=get("n_layer", 12),
        n_head=get("n_head", 12),
        dropout=0.0,
        bias=True,
        layer_norm_epsilon=get("layer_norm_epsilon", 1e-5),
    )


def hf_config_dict(config: GPTConfig) -> dict[str, Any]:
    """A ``config.json`` dict that transformers reads as the same GPT-2."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": config.vocab_size,
        "n_positions": config.n_positions,
        "n_ctx": config.n_positions,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "attn_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "tie_word_embeddings": True,
    }


def our_name(key: str) -> str | None:
    """Our parameter name for a checkpoint key, or None for the mask buffers we skip.

    Works for both layouts: the hub file's (``h.0.ln_1.weight``) and what transformers
    writes today (``transformer.h.0.ln_1.weight``).
    """
    key = key.removeprefix("transformer.")
    if _MASK_BUFFER.match(key):
        return None
    return key


def is_conv1d(name: str) -> bool:
    """Whether a checkpoint tensor (our name) is a Conv1D weight stored as (in, out)."""
    return name.endswith(CONV1D_WEIGHTS) and name.startswith("h.")


def checkpoint_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a GPT-2 checkpoint must hold, by our name, with its shape as stored."""
    C, V = config.n_embd, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (V, C),
        "wpe.weight": (config.n_positions, C),
    }
    for i in range(config.n_layer):
        p = f"h.{i}."
        shapes |= {
            p + "ln_1.weight": (C,),
            p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C),  # Conv1D: (in, out)
            p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C),  # square: a missed transpose keeps the shape
            p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,),
            p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, 4 * C),
            p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (4 * C, C),
            p + "mlp.c_proj.bias": (C,),
        }
    shapes |= {"ln_f.weight": (C,), "ln_f.bias": (C,)}
    if not config.bias:  # our own models may be trained without biases; GPT-2 has them
        shapes = {k: v for k, v in shapes.items() if not k.endswith(".bias")}
    return shapes


def _plan(keys_shapes: Mapping[str, tuple[int, ...]], config: GPTConfig) -> dict[str, str]:
    """Checkpoint key -> our name for every tensor to load; raise naming any missing, extra
    or misshapen tensor. ``lm_head.weight`` maps to itself (it is tied to ``wte``)."""
    want = checkpoint_shapes(config)
    plan: dict[str, str] = {}
    extra, bad = [], []
    for key, shape in keys_shapes.items():
        name = our_name(key)
        if name is None:
            continue
        if name == "lm_head.weight":
            expected = want["wte.weight"]
        elif name in want:
            expected = want[name]
        else:
            extra.append(key)
            continue
        if tuple(shape) != expected:
            hint = (
                " (transposed? Conv1D weights are stored as (in, out))"
                if tuple(shape)[::-1] == expected
                else ""
            )
            bad.append(f"{key}: shape {tuple(shape)}, expected {expected}{hint}")
        if name in plan.values():
            extra.append(f"{key} (a second copy of {name})")
        plan[key] = name
    missing = sorted(set(want) - set(plan.values()), key=_natural)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {_few(missing)}")
    if extra:
        problems.append(f"unexpected tensor(s) a GPT-2 does not have: {_few(extra)}")
    if bad:
        problems.append("wrong shape: " + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    if problems:
        raise CheckpointError(
            f"the checkpoint does not fit a GPT-2 with n_layer={config.n_layer}, "
            f"n_embd={config.n_embd}, vocab_size={config.vocab_size}: " + "; ".join(problems)
        )
    return plan


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _few(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def convert_state_dict(
    hf_state_dict: Mapping[str, torch.Tensor], config: GPTConfig | None = None
) -> dict[str, torch.Tensor]:
    """A transformers/hub GPT-2 state dict renamed and transposed into our ``GPT``'s.

    The tied ``lm_head.weight`` is left out (it is ``wte.weight``); ``config`` defaults to
    one inferred from the tensors' shapes.
    """
    # The number of heads changes no shape, so any value serves for renaming and transposing.
    config = config or infer_config({k: tuple(v.shape) for k, v in hf_state_dict.items()}, n_head=1)
    plan = _plan({k: tuple(v.shape) for k, v in hf_state_dict.items()}, config)
    out = {}
    for key, name in plan.items():
        t = hf_state_dict[key]
        if name == "lm_head.weight":
            continue
        out[name] = t.t() if is_conv1d(name) else t
    return out


def infer_config(
    keys_shapes: Mapping[str, tuple[int, ...]], n_head: int | None = None
) -> GPTConfig:
    """The config implied by a checkpoint's tensor shapes; n_head is not in the shapes, so
    it comes from the published size with the same width."""
    names = {our_name(k): tuple(s) for k, s in keys_shapes.items() if our_name(k)}
    if "wte.weight" not in names or "wpe.weight" not in names:
        raise CheckpointError(
            "the checkpoint has no wte.weight / wpe.weight: is it a GPT-2 checkpoint?"
        )
    V, C = names["wte.weight"]
    n_layer = 1 + max((int(n.split(".")[1]) for n in names if n.startswith("h.")), default=-1)
    by_size = {s["n_embd"]: s["n_head"] for s in SIZES.values()}
    if n_head is None and C not in by_size:
        raise CheckpointError(
            f"n_embd={C} is not one of GPT-2's sizes, so the number of heads cannot be told from "
            f"the weights; put the model's {CONFIG_FILE} next to the .safetensors file"
        )
    n_head = n_head or by_size[C]
    return GPTConfig(
        vocab_size=V, n_positions=names["wpe.weight"][0], n_embd=C, n_layer=n_layer, n_head=n_head
    )


def to_hf_state_dict(model: GPT, prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    """Our model's weights in the checkpoint layout (Conv1D transposed back; no tied head)."""
    out = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        t = t.detach()
        out[prefix + name] = (t.t() if is_conv1d(name) else t).contiguous()
    return out


def empty_model(config: GPTConfig, device: torch.device, dtype: torch.dtype) -> GPT:
    """A GPT whose memory is allocated once, on ``device`` in ``dtype``, and not initialised.

    Built on the meta device first, so no fp32 copy is made and no time is spent on a random
    init that the checkpoint overwrites anyway.
    """
    with torch.device("meta"):
        model = GPT(config)
    model = model.to(dtype=dtype).to_empty(device=device)
    model.lm_head.weight = model.wte.weight  # to_empty gives each name its own tensor: tie again
    return model


def from_transformers(hf_model: Any) -> GPT:
    """Our ``GPT`` with the weights of a transformers ``GPT2LMHeadModel`` (same device and dtype)."""
    config = config_from_hf(hf_model.config)
    sd = hf_model.state_dict()
    ref = next(iter(sd.values()))
    model = empty_model(config, ref.device, ref.dtype)
    load_tensors(model, config, {k: tuple(v.shape) for k, v in sd.items()}, lambda k: sd[k])
    return model.eval()


@torch.no_grad()
def load_tensors(
    model: GPT, config: GPTConfig, keys_shapes: Mapping[str, tuple[int, ...]], read
) -> None:
    """Copy each checkpoint tensor (``read(key)``) into its parameter, one at a time."""
    plan = _plan(keys_shapes, config)
    params = dict(model.named_parameters())
    head = None
    for key, name in plan.items():
        if name == "lm_head.weight":
            head = key  # compared with wte once that is loaded
            continue
        p = params[name]
        t = read(key).to(device=p.device, dtype=p.dtype)
        p.copy_(t.t() if is_conv1d(name) else t)
        del t
    if head is not None:
        t = read(head).to(device=model.wte.weight.device, dtype=model.wte.weight.dtype)
        if not torch.equal(t, model.wte.weight):
            raise CheckpointError(
                "the checkpoint's lm_head.weight differs from wte.weight; GPT-2 ties them and "
                "so does our GPT, so this checkpoint cannot be loaded exactly"
            )


def linear_from_conv1d(weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    """An ``nn.Linear`` computing what GPT-2's Conv1D does: ``x @ weight + bias``, weight (in, out)."""
    n_in, n_out = weight.shape
    layer = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(weight.t())  # nn.Linear keeps (out, in)
        layer.bias.copy_(bias)
    return layer


# The names these had while only this package used them.
_empty_model = empty_model
_load_tensors = load_tensors
