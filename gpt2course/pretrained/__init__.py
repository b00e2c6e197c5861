"""OpenAI's GPT-2 weights in our ``GPT``: exact, safe (safetensors only) and light on memory.

- ``convert``: GPT-2's checkpoint names and shapes, and the Conv1D transposes.
- ``safetensors_file``: ``SafetensorsFile``, a reader that loads one tensor at a time.
- ``hub``: the Hugging Face hub's cache and downloads.
- ``load``: ``load_pretrained`` (a name, a folder or a file), ``write_model`` and the stand-in.

``load_pretrained("gpt2")`` takes the file from the Hugging Face hub (through its normal
cache, so ``HF_HUB_OFFLINE=1`` works once it is there); a local folder (also one written by
``train --out``) or ``.safetensors`` file works too. Offline bundles of models are in
``gpt2course.workshop.offline``.
"""

from ..files import CheckpointError
from .convert import (
    CONFIG_FILE,
    CONV1D_WEIGHTS,
    HUB_REPOS,
    OUR_CONFIG_KEY,
    WEIGHTS_FILE,
    _empty_model,
    _load_tensors,
    _natural,
    _plan,
    checkpoint_shapes,
    config_from_hf,
    convert_state_dict,
    empty_model,
    from_transformers,
    hf_config_dict,
    infer_config,
    is_conv1d,
    linear_from_conv1d,
    load_tensors,
    our_name,
    to_hf_state_dict,
)
from .hub import OFFLINE_HELP, _from_hub, _place_in_hub_cache, hub_cache_dir
from .load import (
    STANDIN_BANNER,
    STANDIN_KEY,
    course_checkpoint,
    iter_checkpoint,
    load_pretrained,
    resolve,
    save_checkpoint,
    write_model,
    write_standin_checkpoint,
)
from .safetensors_file import SafetensorsFile, write_safetensors

__all__ = [
    "CONFIG_FILE",
    "CONV1D_WEIGHTS",
    "CheckpointError",
    "HUB_REPOS",
    "OFFLINE_HELP",
    "OUR_CONFIG_KEY",
    "STANDIN_BANNER",
    "STANDIN_KEY",
    "SafetensorsFile",
    "WEIGHTS_FILE",
    "_empty_model",
    "_from_hub",
    "_load_tensors",
    "_natural",
    "_place_in_hub_cache",
    "_plan",
    "checkpoint_shapes",
    "config_from_hf",
    "convert_state_dict",
    "course_checkpoint",
    "from_transformers",
    "hf_config_dict",
    "hub_cache_dir",
    "infer_config",
    "load_weights",
    "empty_model",
    "is_conv1d",
    "load_tensors",
    "linear_from_conv1d",
    "iter_checkpoint",
    "load_pretrained",
    "our_name",
    "resolve",
    "save_checkpoint",
    "to_hf_state_dict",
    "write_model",
    "write_safetensors",
    "write_standin_checkpoint",
]


def __getattr__(name: str):
    if name == "load_weights":  # gpt2course.weights builds on this package
        from ..weights import load_weights

        return load_weights
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
