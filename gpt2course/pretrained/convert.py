"""GPT-2's checkpoint names, its config.json, and the Conv1D transposes.

GPT-2's checkpoint was written for a TensorFlow model whose linear layers were "Conv1D"s
storing their weight as (in, out); ``nn.Linear`` stores (out, in). So four weights per block
are transposed on the way in: ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``.
Every other name and shape already matches our modules, because ``model.py`` uses the
checkpoint's names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch

from ..config import MODEL_NAMES, SIZES, GPTConfig
from ..files import CheckpointError

# The hub names of the four sizes (config.SIZES); the short names are what the course uses.
HUB_REPOS = {name: f"openai-community/{name}" for name in MODEL_NAMES}
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# config.json key holding our full GPTConfig (dropout, bias) beside transformers' own keys.
OUR_CONFIG_KEY = "gpt2course_config"

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


# GPTConfig's fields that transformers' config.json holds too: our name -> (its key, default).
# Those keys are the one source of a model's shape; OUR_CONFIG_KEY adds only the rest.
HF_KEYS = {
    "vocab_size": ("vocab_size", 50257),
    "context_length": ("n_positions", 1024),
    "n_embd": ("n_embd", 768),
    "n_layer": ("n_layer", 12),
    "n_head": ("n_head", 12),
    "layer_norm_epsilon": ("layer_norm_epsilon", 1e-5),
}


def config_from_hf(hf_config: Mapping[str, Any] | Any) -> GPTConfig:
    """Our ``GPTConfig`` from a transformers ``GPT2Config`` or its ``config.json`` dict."""
    get = hf_config.get if isinstance(hf_config, Mapping) else partial(getattr, hf_config)
    model_type = get("model_type", "gpt2")
    if model_type != "gpt2":
        raise CheckpointError(f"this is a {model_type!r} checkpoint, not GPT-2 ('gpt2')")
    values = {ours: get(key, default) for ours, (key, default) in HF_KEYS.items()}
    for ours, (key, _) in HF_KEYS.items():
        v = values[ours]
        number = ours == "layer_norm_epsilon"
        if isinstance(v, bool) or not isinstance(v, (int, float) if number else int):
            kind = "a number" if number else "a positive integer"
            raise CheckpointError(
                f"config.json's {key} must be {kind}, got {v!r} (a {type(v).__name__})"
            )
    n_embd = values["n_embd"]
    # Variants our model does not implement: refuse rather than load them wrongly.
    for key, default, allowed in (
        ("activation_function", "gelu_new", ("gelu_new", "gelu_pytorch_tanh")),
        ("n_inner", None, (None, 4 * n_embd)),
        ("scale_attn_weights", True, (True,)),
        ("scale_attn_by_inverse_layer_idx", False, (False,)),
        ("tie_word_embeddings", True, (True,)),
        ("add_cross_attention", False, (False,)),
    ):
        if (value := get(key, default)) not in allowed:
            raise CheckpointError(
                f"config.json has {key}={value!r}; our GPT implements only {allowed[0]!r}"
            )
    try:
        return GPTConfig(**values, dropout=0.0, bias=True)
    except ValueError as e:  # e.g. n_embd not divisible by n_head
        raise CheckpointError(f"config.json: {e}") from None


def config_from_json(raw: Mapping[str, Any]) -> GPTConfig:
    """A checkpoint's ``GPTConfig`` from its config.json: the shape from transformers' keys
    (what ``from_pretrained`` reads too), dropout and bias from ``OUR_CONFIG_KEY``. Older
    checkpoints repeat the shape there: where the two disagree, ``CheckpointError`` names both."""
    hf = config_from_hf(raw)
    if OUR_CONFIG_KEY not in raw:
        return hf
    ours = raw[OUR_CONFIG_KEY]
    if not isinstance(ours, dict):
        raise CheckpointError(f"{OUR_CONFIG_KEY} is not an object of settings")
    for name, (key, _) in HF_KEYS.items():
        theirs = getattr(hf, name)
        if name in ours and (ours[name] != theirs or type(ours[name]) is not type(theirs)):
            raise CheckpointError(
                f"config.json disagrees with itself: {key} is {theirs!r} but "
                f"{OUR_CONFIG_KEY}.{name} is {ours[name]!r}; transformers reads {key}, so set "
                f"both to the model's value (or remove {name} from {OUR_CONFIG_KEY})"
            )
    rest = {k: v for k, v in ours.items() if k not in HF_KEYS}
    unknown = sorted(set(rest) - set(GPTConfig.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"{OUR_CONFIG_KEY} has unknown settings {unknown}")
    try:
        return GPTConfig(**{**hf.to_dict(), **rest})
    except ValueError as e:
        raise CheckpointError(f"config.json: {e}") from None


def hf_config_dict(config: GPTConfig) -> dict[str, Any]:
    """A ``config.json`` dict that transformers reads as the same GPT-2 (whose keys are the
    one source of its shape: ``write_model`` adds only dropout and bias beside them)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": config.vocab_size,
        "n_positions": config.context_length,
        "n_ctx": config.context_length,
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


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> GPTConfig:
    """The config implied by a checkpoint's tensor shapes, for a file without its config.json.
    The number of heads changes no shape, so it comes from the published size of that width."""
    names = {our_name(k): tuple(s) for k, s in shapes.items() if our_name(k)}
    if "wte.weight" not in names or "wpe.weight" not in names:
        raise CheckpointError(
            "the checkpoint has no wte.weight / wpe.weight: is it a GPT-2 checkpoint?"
        )
    V, C = names["wte.weight"]
    layers = []
    for n in names:
        if n.startswith("h."):
            index = n.split(".")[1]
            if not index.isdigit():  # isdigit, not int(): int() takes " 1" and "١"
                raise CheckpointError(
                    f"the checkpoint's tensor {n!r} has no layer number after 'h.' (GPT-2 names "
                    "them h.0, h.1, ...); it is not a GPT-2 checkpoint, or was renamed wrongly"
                )
            layers.append(int(index))
    n_layer = 1 + max(layers, default=-1)
    n_head = {s["n_embd"]: s["n_head"] for s in SIZES.values()}.get(C)
    if n_head is None:
        raise CheckpointError(
            f"n_embd={C} is not one of GPT-2's sizes, so the number of heads cannot be told from "
            f"the weights; put the model's {CONFIG_FILE} next to the .safetensors file"
        )
    T = names["wpe.weight"][0]
    return GPTConfig(vocab_size=V, context_length=T, n_embd=C, n_layer=n_layer, n_head=n_head)


def our_name(key: str) -> str | None:
    """Our parameter name for a checkpoint key, or None for the mask buffers we skip.

    Works for both layouts: the hub file's (``h.0.ln_1.weight``) and what transformers
    writes today (``transformer.h.0.ln_1.weight``).
    """
    key = key.removeprefix("transformer.")
    return None if _MASK_BUFFER.match(key) else key


def is_conv1d(name: str) -> bool:
    """Whether a checkpoint tensor (our name) is a Conv1D weight stored as (in, out)."""
    return name.endswith(CONV1D_WEIGHTS) and name.startswith("h.")


def convert_state_dict(hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers/hub GPT-2 state dict renamed and transposed into our ``GPT``'s: the mask
    buffers and the tied ``lm_head.weight`` (it is ``wte.weight``) are left out."""
    out = {}
    for key, t in hf_state_dict.items():
        name = our_name(key)
        if name is not None and name != "lm_head.weight":
            out[name] = t.t() if is_conv1d(name) else t
    return out


def to_hf_state_dict(
    model: torch.nn.Module, prefix: str = "transformer."
) -> dict[str, torch.Tensor]:
    """Our model's weights in the checkpoint layout (Conv1D transposed back; no tied head)."""
    out = {}
    for name, t in model.state_dict().items():
        if name != "lm_head.weight":
            t = t.detach()
            out[prefix + name] = (t.t() if is_conv1d(name) else t).contiguous()
    return out


def linear_from_conv1d(weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    """An ``nn.Linear`` computing what GPT-2's Conv1D does: ``x @ weight + bias``, weight (in, out)."""
    n_in, n_out = weight.shape
    layer = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(weight.t())  # nn.Linear keeps (out, in)
        layer.bias.copy_(bias)
    return layer
