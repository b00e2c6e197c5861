"""Loading a model folder, file or hub name into our ``GPT``, and writing one.

Tensors are read one at a time straight into a model whose memory was allocated once, in
the target dtype, so loading needs little more than the model's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model

from ..assets import cache_dir
from ..config import GPTConfig
from ..files import CheckpointError, atomic_write_text
from ..model import GPT
from .convert import (
    CONFIG_FILE,
    HUB_REPOS,
    OUR_CONFIG_KEY,
    WEIGHTS_FILE,
    _plan,
    config_from_hf,
    empty_model,
    hf_config_dict,
    infer_config,
    load_tensors,
    our_name,
    to_hf_state_dict,
)
from .hub import _from_hub, _remove_from_hub_cache
from .safetensors_file import SafetensorsFile, write_safetensors

# Marks a checkpoint made by write_standin_checkpoint(), so nobody mistakes its text for GPT-2's.
STANDIN_KEY = "gpt2course_standin"


STANDIN_BANNER = (
    "*** STAND-IN MODEL: small, with RANDOM weights, not GPT-2. Every text it writes is noise "
    "and every number about its quality is meaningless. ***"
)


def write_model(
    model: GPT, folder: str | Path, extra_config: Mapping[str, Any] | None = None
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` in the layout ``save_pretrained`` uses.

    This is the weights part of the one checkpoint format: transformers, ``load_pretrained``
    and ``checkpoint.load_checkpoint`` all read it. ``config.json`` also carries our whole
    ``GPTConfig`` (under ``gpt2course_config``), so dropout and bias survive a round trip.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(to_hf_state_dict(model), folder / WEIGHTS_FILE)
    cfg = hf_config_dict(model.config) | {OUR_CONFIG_KEY: model.config.to_dict()}
    cfg |= dict(extra_config or {})
    atomic_write_text(folder / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    return folder


def save_checkpoint(
    model: GPT, folder: str | Path, extra_config: Mapping[str, Any] | None = None
) -> Path:
    """Old name of ``write_model``; note the order (model, folder). To save training state
    too, use ``checkpoint.save_checkpoint(path, model, ...)``, which writes the same layout."""
    return write_model(model, folder, extra_config)


def write_standin_checkpoint(
    path: str | Path, n_layer: int = 2, n_head: int = 4, n_embd: int = 128, seed: int = 0
) -> Path:
    """A small GPT-2-format checkpoint with RANDOM weights, for running the course without
    GPT-2's: GPT-2's vocabulary and context, but its text is noise. Marked as a stand-in."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    return write_model(model, path, extra_config={STANDIN_KEY: True})


def resolve(name_or_path: str | Path) -> tuple[Path, Path | None, str | None]:
    """Where a model's weights and config are: ``(weights, config or None, hub name or None)``."""
    s = str(name_or_path)
    key = s.removeprefix("openai-community/")
    if key in HUB_REPOS and not Path(s).exists():
        weights, config = _from_hub(key)
        return weights, config, key
    p = Path(s).expanduser()
    if p.is_dir():
        if not (p / WEIGHTS_FILE).is_file():
            pt = [f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt")]
            why = (
                f" (found {', '.join(pt)}: pickle files are never loaded, for safety)" if pt else ""
            )
            raise CheckpointError(f"{p} has no {WEIGHTS_FILE}{why}")
        return p / WEIGHTS_FILE, (p / CONFIG_FILE if (p / CONFIG_FILE).is_file() else None), None
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise CheckpointError(f"no such file: {p}")
        cfg = p.parent / CONFIG_FILE
        return p, (cfg if cfg.is_file() else None), None
    if p.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise CheckpointError(
            f"{p} is a pickle checkpoint; only .safetensors files are loaded (pickle can run code)"
        )
    raise CheckpointError(
        f"{s!r} is neither a model name ({', '.join(HUB_REPOS)}) nor an existing folder or .safetensors file"
    )


def load_pretrained(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> GPT:
    """GPT-2 with published weights: a name (gpt2, gpt2-medium, gpt2-large, gpt2-xl), a folder
    holding config.json + model.safetensors, or a .safetensors file. Returned in eval mode on
    ``device`` (default cpu) in ``dtype`` (default float32), with ``model.source`` (where the
    weights came from) and ``model.is_standin`` (a random stand-in, not GPT-2) set."""
    weights, config_path, hub_name = resolve(name_or_path)
    device = torch.device(device or "cpu")
    dtype = dtype or torch.float32
    try:
        st = SafetensorsFile(weights)
    except CheckpointError as e:
        if hub_name is None:
            raise
        _remove_from_hub_cache(weights)
        raise CheckpointError(
            f"{e}. The bad file was removed from the hub cache; run again to download it afresh."
        ) from None
    raw_config: dict[str, Any] = {}
    if config_path is not None:
        raw_config = _read_config(config_path)
        if _is_legacy_config(raw_config):
            return _load_legacy(weights, raw_config, device, dtype)
        if OUR_CONFIG_KEY in raw_config:
            config = _our_config(raw_config[OUR_CONFIG_KEY], config_path)
        else:
            try:
                config = config_from_hf(raw_config)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{config_path}: {e}") from None
    elif hub_name is not None:
        config = GPTConfig.from_name(hub_name)
    else:
        config = infer_config(st.shapes())
    _check_float_weights(st)
    # Against the file's own shapes before allocating: a config.json claiming n_embd of a
    # million would otherwise ask for terabytes before any tensor is compared.
    _plan(st.shapes(), config)
    model = empty_model(config, device, dtype)
    order = st.keys_in_file_order()
    load_tensors(model, config, {k: st.entries[k][1] for k in order}, st.read)
    model.source = hub_name or str(weights)
    model.is_standin = bool(raw_config.get(STANDIN_KEY, False))
    return model.eval()


def _read_config(path: Path) -> dict[str, Any]:
    """A config.json as a dict, or ``CheckpointError`` saying what is wrong with the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not UTF-8 text; is it really a config.json?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{path} holds a JSON {type(raw).__name__}, not an object of settings"
        )
    return raw


def _check_float_weights(st: SafetensorsFile) -> None:
    """A GPT-2 has only floating-point weights: integers or booleans would be cast silently."""
    bad = [
        f"{k} ({str(e[0]).removeprefix('torch.')})"
        for k, e in st.entries.items()
        if our_name(k) is not None and not e[0].is_floating_point
    ]
    if bad:
        raise CheckpointError(
            f"{st.path}: a GPT-2's weights are floating point, but these are not: {', '.join(bad[:6])}"
        )


def _our_config(d: Any, where: Path) -> GPTConfig:
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: {OUR_CONFIG_KEY} is not an object of settings")
    try:
        return GPTConfig(**d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {OUR_CONFIG_KEY} is not a valid GPTConfig ({e})") from None


def _is_legacy_config(raw: Mapping[str, Any]) -> bool:
    """A ``config.json`` written by gpt2course before 0.2: a bare GPTConfig, our weight names."""
    return "model_type" not in raw and "n_positions" in raw and "bias" in raw


def _load_legacy(weights: Path, raw: Mapping[str, Any], device, dtype) -> GPT:
    """Read the first checkpoint format (our parameter names, no transposes)."""
    model = GPT(_our_config(raw, weights.parent / CONFIG_FILE))
    try:
        load_model(model, str(weights), strict=True, device=str(device))
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"could not read the tensors in {weights}: {e}") from e
    model.to(device=device, dtype=dtype)
    model.source, model.is_standin = str(weights), False
    return model.eval()


def iter_checkpoint(name_or_path: str | Path) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """Each tensor of a checkpoint as ``(key, shape, dtype)``, without reading any weights."""
    weights, _, _ = resolve(name_or_path)
    st = SafetensorsFile(weights)
    for key in st.keys_in_file_order():
        dtype, shape, _, _ = st.entries[key]
        yield key, shape, str(dtype).removeprefix("torch.")


def course_checkpoint(default: str = "gpt2") -> tuple[Path, bool]:
    """The weights file the notebooks use, and whether it is a random stand-in.

    ``$GPT2COURSE_MODEL`` (a name, folder or file) wins, else ``default``. When neither can be
    had (no network, nothing cached), a small random stand-in is written to the course cache
    so that the notebook still runs; it says so loudly.
    """

    wanted = os.environ.get("GPT2COURSE_MODEL") or default
    try:
        weights, config, _ = resolve(wanted)
    except CheckpointError as e:
        print(f"Could not get {wanted!r}: {e}\n")
        folder = cache_dir() / "standin-gpt2"
        if not (folder / WEIGHTS_FILE).is_file():
            write_standin_checkpoint(folder)
        weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    standin = bool(config and json.loads(config.read_text(encoding="utf-8")).get(STANDIN_KEY))
    if standin:
        print(STANDIN_BANNER)
    return weights, standin
