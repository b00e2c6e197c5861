"""Checkpoints as safetensors + JSON, never pickle: weights, AdamW state, step and data position.

A checkpoint is a folder, and the one format every command reads (``generate --model``,
``train --resume``, ``load_pretrained``, transformers' ``from_pretrained``)::

    config.json            GPT-2's config.json keys, plus dropout and bias (gpt2course_config)
    model.safetensors      the weights in GPT-2's layout (``save_pretrained``'s names)
    optimizer.safetensors  AdamW's moments and step counts, one tensor each (optional)
    checkpoint.json        step, data position, loss history, train config, the optimizer's
                           param groups, RNG states' names, and the sha256 of every file

``load_checkpoint`` checks every hash first, so a truncated or damaged file is named in a
clear error instead of loading garbage.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .files import (
    CheckpointError,
    atomic_write_text,
    exchange_paths,
    lock_dir,
    make_temp_dir,
    remove_stale_temps,
    sha256_of,
)
from .model import GPT, GPTConfig
from .pretrained import load_pretrained, read_config, write_model
from .pretrained.safetensors_file import SafetensorsFile, write_safetensors

FORMAT = "gpt2course-checkpoint"
# Version 2: weights and config.json in GPT-2's (transformers') layout (pretrained.write_model).
VERSION = 2


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the model, and everything ``train(..., resume=)`` needs."""

    model: GPT
    config: GPTConfig
    step: int = 0
    data_position: int = 0
    history: dict | None = None
    train_config: dict | None = None
    optimizer_state: dict | None = None  # ready for optimizer.load_state_dict
    scaler_state: dict | None = None
    rng_state: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # e.g. {"tokenizer": "bytes", "data": {...}}
    path: Path | None = None


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state_dict["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """``optimizer.state_dict()`` again from the ``state.*`` tensors and the JSON rest."""
    state = {int(idx): dict(values) for idx, values in meta.get("scalars", {}).items()}
    for name, t in tensors.items():
        if name.startswith("state."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    groups = [g | {"betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def restore_rng(rng_state: dict[str, torch.Tensor]) -> None:
    """Put back the RNG states a checkpoint saved (dropout then draws the same masks)."""
    if "rng.cpu" in rng_state:
        torch.set_rng_state(rng_state["rng.cpu"])
    cuda = sorted(k for k in rng_state if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [rng_state[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    data_position: int = 0,
    history: dict | None = None,
    train_config: dict | None = None,
    scaler_state: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a crash mid-save leaves the old one intact)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if not isinstance(getattr(model, "config", None), GPTConfig):
        raise TypeError(
            "save_checkpoint expects a gpt2course GPT (a model with a GPTConfig .config)"
        )
    path = check_checkpoint_dest(path)
    _recover(path)
    remove_stale_temps(path)
    tmp = make_temp_dir(path)
    lock = lock_dir(tmp)  # marks it in use, so a concurrent load does not clean it away
    try:
        # Every file goes through files.atomic_path too: it fsyncs, so the folder renamed
        # into place below holds complete files even after a power cut.
        write_model(model, tmp)
        meta: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "step": int(step),
            "data_position": int(data_position),
            "history": history,
            "train_config": train_config,
            "scaler": scaler_state,
            "extra": extra or {},
        }
        rng = {"rng.cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
        if optimizer is not None:
            tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
            write_safetensors(tensors | rng, tmp / "optimizer.safetensors")
        else:
            write_safetensors(rng, tmp / "rng.safetensors")
        meta["files"] = {
            f.name: sha256_of(f) for f in sorted(tmp.iterdir()) if f.name != "checkpoint.json"
        }
        atomic_write_text(tmp / "checkpoint.json", json.dumps(meta, indent=1) + "\n")
        _publish(tmp, path)
    finally:
        if lock is not None:
            os.close(lock)
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def check_checkpoint_dest(path: str | Path) -> Path:
    """Raise ``CheckpointError`` unless a checkpoint can be saved at ``path``: a new or empty
    folder, or an earlier checkpoint, in a place this process can write. Run before training,
    so a run is not lost at its end for want of a place to put it."""
    path = Path(path)
    if path.is_file():
        raise CheckpointError(f"{path} is a file; give a folder name for the checkpoint")
    if path.is_dir() and not (path / "checkpoint.json").is_file() and any(path.iterdir()):
        # Saving replaces the whole folder: never do that to one that is not a checkpoint.
        raise CheckpointError(
            f"{path} exists and is not a checkpoint folder; save into a new or empty folder"
        )
    try:  # the only sure test of writability (permissions, read-only mounts, a file on the way)
        os.rmdir(make_temp_dir(path))
    except OSError as e:
        raise CheckpointError(
            f"cannot write a checkpoint at {path} ({e.strerror or e}); choose another folder"
        ) from None
    return path


def _publish(tmp: Path, path: Path) -> None:
    """Put the finished folder ``tmp`` at ``path`` so that at every moment ``path`` holds the
    old checkpoint or the new one: one atomic swap where the OS has it (Linux); elsewhere two
    renames, with the old one kept at ``.<name>.old`` until the new one is in place, which
    ``_recover`` (run by every load and save) puts back if a crash fell between them."""
    if not path.exists():
        os.replace(tmp, path)
    elif exchange_paths(tmp, path):
        pass  # tmp now holds the old checkpoint; the caller removes it
    else:
        old = path.parent / f".{path.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)


def _recover(path: Path) -> None:
    """Put back the previous checkpoint if a save died between its two renames (``_publish``)."""
    old = path.parent / f".{path.name}.old"
    if not path.exists() and (old / "checkpoint.json").is_file():
        os.replace(old, path)


def _read_meta(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the folder does not exist")
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file; pass the checkpoint folder (the one holding checkpoint.json)"
        )
    f = path / "checkpoint.json"
    if not f.is_file():
        raise CheckpointError(
            f"{path} is not a gpt2course checkpoint (no checkpoint.json); "
            "was it written by save_checkpoint or `python -m gpt2course train --out`?"
        )
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f} is damaged or truncated ({e}); use another checkpoint") from e
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{f} holds a JSON {type(meta).__name__}, not a checkpoint's settings (an object); "
            "it was overwritten: use another checkpoint, or save this model again"
        )
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{f} is not a {FORMAT} file (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer gpt2course (checkpoint version {meta['version']}); "
            "upgrade the package to read it"
        )
    return meta


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True
) -> Checkpoint:
    """Load a checkpoint folder: the model (on ``device``) and the state a resume needs.

    With ``verify`` every file's sha256 is checked first; a missing, truncated or damaged
    file raises ``CheckpointError`` naming it.
    """
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only place can still be read
        _recover(path)
        remove_stale_temps(path)
    meta = _read_meta(path)
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f} is missing; the checkpoint is incomplete")
        if verify and sha256_of(f) != digest:
            raise CheckpointError(
                f"{f} is damaged or truncated (its sha256 does not match checkpoint.json); "
                "re-save it or use an earlier checkpoint"
            )
    model = load_pretrained(path, device=device)
    model.train()  # ready to carry on training, as GPT(config) would be
    opt_file = path / "optimizer.safetensors"
    st = SafetensorsFile(opt_file if opt_file.is_file() else path / "rng.safetensors")
    tensors = {k: st.read(k) for k in st.entries}
    return Checkpoint(
        model=model,
        config=model.config,
        step=meta.get("step", 0),
        data_position=meta.get("data_position", 0),
        history=meta.get("history"),
        train_config=meta.get("train_config"),
        optimizer_state=(
            _unflatten_optimizer(tensors, meta["optimizer"]) if "optimizer" in meta else None
        ),
        scaler_state=meta.get("scaler"),
        rng_state={k: v for k, v in tensors.items() if k.startswith("rng.")},
        extra=meta.get("extra", {}),
        path=path,
    )


def tokenizer_name(path: str | Path) -> str:
    """The tokenizer a checkpoint was trained with (``"bytes"`` or ``"gpt2"``); ``"gpt2"``
    for a model folder that is not a training checkpoint (GPT-2's own)."""
    if not (Path(path) / "checkpoint.json").is_file():
        return "gpt2"
    return _read_meta(Path(path)).get("extra", {}).get("tokenizer") or "gpt2"


def run_settings(path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``{"model", "data", "train"}`` settings a checkpoint was trained with, so that
    ``train --resume DIR`` needs no ``--config``."""
    path = Path(path)
    meta = _read_meta(path)
    model = read_config(path).to_dict()
    train = dict(meta.get("train_config") or {})
    train.pop("checkpoint_dir", None)  # --out says where this run saves
    return {
        "model": {k: model[k] for k in GPTConfig.__dataclass_fields__ if k in model},
        "data": dict(meta.get("extra", {}).get("data") or {}),
        "train": train,
    }
