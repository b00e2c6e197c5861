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


def config_from_hf(hf_config: Mapping[str, Any] | Any) -> GPTConfig:
    """Our ``GPTConfig`` from a transformers ``GPT2Config`` or its ``config.json`` dict."""
    get = hf_config.get if isinstance(hf_config, Mapping) else partial(getattr, hf_config)
    model_type = get("model_type", "gpt2")
    if model_type != "gpt2":
        raise CheckpointError(f"this is a {model_type!r} checkpoint, not GPT-2 ('gpt2')")
    n_embd = get("n_embd", 768)
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
    return GPTConfig(
        vocab_size=get("vocab_size", 50257),
        context_length=get("n_positions", 1024),
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
    n_head = {s["n_embd"]: s["n_head"] for s in SIZES.values()}.get(C)
    if n_head is None:
        raise CheckpointError(
            f"n_embd={C} is not one of GPT-2's sizes, so the number of heads cannot be told from "
            f"the weights; put the model's {CONFIG_FILE} next to the .safetensors file"
        )
    n_layer = 1 + max((int(n.split(".")[1]) for n in names if n.startswith("h.")), default=-1)
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
