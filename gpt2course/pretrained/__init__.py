"""OpenAI's GPT-2 weights in our ``GPT`` or yours: exact, safe (safetensors only), light on memory.

- ``convert``: GPT-2's checkpoint names, its config.json, and the Conv1D transposes.
- ``safetensors_file``: ``SafetensorsFile``, a reader that loads one tensor at a time.
- ``hub``: the Hugging Face hub's cache and downloads.
- ``load``: ``load_weights`` (the one loader), ``load_pretrained``, ``write_model``, the stand-in.
- ``published``: the greedy text real gpt2 writes, recorded outside, to tell real weights.

``load_pretrained("gpt2")`` takes the file from the Hugging Face hub (through its normal
cache, so ``HF_HUB_OFFLINE=1`` works once it is there); a local folder (also one written by
``train --out``) or ``.safetensors`` file works too. Offline bundles are made by
``gpt2course.workshop.offline``.
"""

from .convert import HUB_REPOS, config_from_hf, convert_state_dict, our_name
from .load import (
    STANDIN_BANNER,
    course_checkpoint,
    from_transformers,
    iter_checkpoint,
    load_pretrained,
    load_weights,
    read_config,
    write_model,
    write_standin_checkpoint,
)
from .published import PUBLISHED_GREEDY, PUBLISHED_PROMPT, greedy_ids
from .safetensors_file import SafetensorsFile

__all__ = [
    "HUB_REPOS",
    "PUBLISHED_GREEDY",
    "PUBLISHED_PROMPT",
    "STANDIN_BANNER",
    "SafetensorsFile",
    "config_from_hf",
    "convert_state_dict",
    "course_checkpoint",
    "from_transformers",
    "greedy_ids",
    "iter_checkpoint",
    "load_pretrained",
    "load_weights",
    "our_name",
    "read_config",
    "write_model",
    "write_standin_checkpoint",
]
