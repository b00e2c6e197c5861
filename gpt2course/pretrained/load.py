"""The one loader: GPT-2's weights into any module with GPT-2's parameter names, and writing them.

A checkpoint names its tensors ``wte.weight``, ``h.0.attn.c_attn.weight``, ... (the hub's file)
or ``transformer.h.0...`` (what ``save_pretrained`` writes). A model whose parameters have
those names takes them, whatever classes it is built from: the package's ``GPT`` or yours.
Tensors are read one at a time and copied into memory allocated once, in the model's dtype,
so loading needs little more than the model's size. Only safetensors files are read: a
pickle can run code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..assets import cache_dir
from ..config import GPTConfig
from ..files import CheckpointError, atomic_write_text
from ..model import GPT
from .convert import (
    CONFIG_FILE,
    HF_KEYS,
    HUB_REPOS,
    OUR_CONFIG_KEY,
    WEIGHTS_FILE,
    config_from_hf,
    config_from_json,
    config_from_shapes,
    hf_config_dict,
    is_conv1d,
    our_name,
    to_hf_state_dict,
)
from .hub import _from_hub, _remove_from_hub_cache
from .safetensors_file import SafetensorsFile, write_safetensors

# Marks a checkpoint made by write_standin_checkpoint(), so nobody mistakes its text for GPT-2's.
STANDIN_KEY = "gpt2course_standin"
# Its value in config.json: a cached stand-in of an earlier version is written again.
STANDIN_VERSION = 2
STANDIN_BANNER = (
    "*** STAND-IN MODEL: small, with RANDOM weights, not GPT-2. Every text it writes is noise "
    "and every number about its quality is meaningless. ***"
)
_PICKLES = (".bin", ".pt", ".pth", ".ckpt")


# ---------------------------------------------------------------- finding and opening one


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
            pt = [f.name for f in p.iterdir() if f.suffix in _PICKLES]
            why = (
                f" (found {', '.join(pt)}: pickle files are never loaded, for safety)" if pt else ""
            )
            raise CheckpointError(f"{p} has no {WEIGHTS_FILE}{why}")
        p = p / WEIGHTS_FILE
    elif p.suffix in _PICKLES:
        raise CheckpointError(
            f"{p} is a pickle checkpoint; only .safetensors files are loaded (pickle can run code)"
        )
    elif p.suffix != ".safetensors":
        raise CheckpointError(
            f"{s!r} is neither a model name ({', '.join(HUB_REPOS)}) nor an existing folder or "
            ".safetensors file"
        )
    elif not p.is_file():
        raise CheckpointError(f"no such file: {p}")
    config = p.parent / CONFIG_FILE
    return p, (config if config.is_file() else None), None


def _open(name_or_path: str | Path) -> tuple[SafetensorsFile, GPTConfig | None, dict, str | None]:
    """The checked weights file, the model's config (None for a lone .safetensors file), its
    config.json's settings and its hub name."""
    weights, config_path, hub_name = resolve(name_or_path)
    try:
        st = SafetensorsFile(weights)
    except CheckpointError as e:
        if hub_name is None:
            raise
        _remove_from_hub_cache(weights)
        raise CheckpointError(
            f"{e}. The bad file was removed from the hub cache; run again to download it afresh."
        ) from None
    # A GPT-2 has only floating-point weights: integers or booleans would be cast silently.
    bad = [
        f"{k} ({str(dtype).removeprefix('torch.')})"
        for k, (dtype, *_) in st.entries.items()
        if our_name(k) is not None and not dtype.is_floating_point
    ]
    if bad:
        raise CheckpointError(
            f"{weights}: a GPT-2's weights are floating point, but these are not: {', '.join(bad[:6])}"
        )
    raw = _read_config(config_path) if config_path else {}
    return st, _gpt_config(config_path, raw, hub_name), raw, hub_name


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


def _gpt_config(path: Path | None, raw: dict, hub_name: str | None) -> GPTConfig | None:
    """The model's config from config.json (``convert.config_from_json``), else the published
    size's; None for a lone .safetensors file."""
    if path is None:
        return GPTConfig.from_name(hub_name) if hub_name else None
    try:
        return config_from_json(raw)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def read_config(folder: str | Path) -> GPTConfig:
    """The ``GPTConfig`` of a model folder, read from its config.json as every loader reads it."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}")
    return _gpt_config(path, _read_config(path), None)


# ---------------------------------------------------------------- the one mapping


def _tied(params: Mapping[str, nn.Parameter]) -> bool:
    """Whether the head is the token embedding (GPT-2's tie), or absent."""
    return "lm_head.weight" not in params or params["lm_head.weight"] is params.get("wte.weight")


def _few(names: list[str], n: int = 6, sep: str = ", ") -> str:
    return sep.join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _hint(name: str, shape: tuple, expected: tuple, transpose: bool) -> str:
    """The likely cause of a misfit shape, said once however many tensors it hits."""
    if shape[::-1] == expected and transpose:
        return "(transposed? Conv1D weights are stored as (in, out); an nn.Linear takes them .t())"
    if shape[::-1] == expected:
        return (
            "(your layer is not an nn.Linear, so its weight is taken as stored, (in, out): a "
            "Conv1D weight not transposed? An nn.Linear takes it transposed, .t())"
        )
    if name.endswith(("attn.c_attn.weight", "attn.c_attn.bias")):
        return "(c_attn projects C to 3 * C: q, k and v in one matrix)"
    if name.startswith(("wte.", "wpe.", "lm_head.")):
        return "(build the model with the checkpoint's config: vocab_size and context_length)"
    return ""


def _plan(
    model: nn.Module, shapes: Mapping[str, tuple[int, ...]], n_head: int | None = None
) -> dict[str, tuple[str, bool]]:
    """Checkpoint key -> (our name, transpose?) for every tensor to copy; or ``CheckpointError``
    naming each tensor with no parameter, each parameter with no tensor, each misfit shape."""
    # The number of heads changes no shape, so a wrong one would load and give wrong logits.
    for name, module in model.named_modules():
        heads = getattr(module, "n_head", None)
        if n_head and name.endswith(".attn") and isinstance(heads, int) and heads != n_head:
            raise CheckpointError(
                f"{name}.n_head is {heads} but the checkpoint was trained with n_head={n_head}: "
                "the weights would load and the attention would be wrong. Build the model from "
                "the checkpoint's config"
            )
    params = dict(model.named_parameters(remove_duplicate=False))
    plan: dict[str, tuple[str, bool]] = {}
    done, unused, bad, hints = set(), [], [], {}
    for key, shape in shapes.items():
        name = our_name(key)
        if name is None:
            continue  # the hub file's attention-mask buffers: constants, not weights
        if name in done:
            unused.append(f"{key} (a second copy of {name})")
            continue
        target = "wte.weight" if name == "lm_head.weight" and _tied(params) else name
        if target not in params:
            unused.append(key)
            continue
        # nn.Linear keeps (out, in); the file has Conv1D's (in, out). A Conv1D of yours does not.
        transpose = is_conv1d(name) and isinstance(
            model.get_submodule(name.rpartition(".")[0]), nn.Linear
        )
        want = tuple(params[target].shape)
        expected = want[::-1] if transpose else want  # in the file's layout
        if tuple(shape) != expected:
            bad.append(f"{key}: shape {tuple(shape)}, expected {expected}")
            hints[_hint(name, tuple(shape), expected, transpose)] = None
        plan[key] = (name, transpose)
        done.add(name)
    missing = sorted(  # in natural order: h.2 before h.10
        set(params) - done - {"lm_head.weight"},
        key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)],
    )
    problems = []
    if missing:
        problems.append(
            f"missing {len(missing)} tensor(s): the checkpoint has nothing for your parameter(s) "
            f"{_few(missing)} (GPT-2 has no such weights: a layer it does not have, or a name "
            "that differs from its?)"
        )
    if unused:
        problems.append(
            f"unexpected tensor(s): your model has no parameter for the checkpoint's {_few(unused)} "
            "(are your modules named as GPT-2's (wte, wpe, h.N.ln_1, h.N.attn.c_attn, "
            "h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc, h.N.mlp.c_proj, ln_f), with bias=True, "
            "and as many blocks as the checkpoint?)"
        )
    if bad:
        problems.append(f"wrong shape: {_few(bad, 5, '; ')} " + " ".join(hints).strip())
    if problems:
        config = getattr(model, "config", None)
        what = (
            f"a GPT-2 with n_layer={config.n_layer}, n_embd={config.n_embd}, "
            f"vocab_size={config.vocab_size}"
            if isinstance(config, GPTConfig)
            else "your model"
        )
        raise CheckpointError(f"the checkpoint does not fit {what}: " + "; ".join(problems))
    return plan


@torch.no_grad()
def load_tensors(
    model: nn.Module,
    shapes: Mapping[str, tuple[int, ...]],
    read: Callable[[str], torch.Tensor],
    n_head: int | None = None,
) -> nn.Module:
    """Copy each checkpoint tensor (``read(key)``) into ``model``'s parameter of that name, one at
    a time, after checking every name and shape (``shapes``: checkpoint key -> shape as stored)."""
    plan = _plan(model, shapes, n_head)
    params = dict(model.named_parameters(remove_duplicate=False))
    tied, head = _tied(params), None
    for key, (name, transpose) in plan.items():
        if name == "lm_head.weight" and tied:
            head = key  # compared with wte once that is loaded
            continue
        t = read(key)
        params[name].copy_(t.t() if transpose else t)  # copy_ casts to the parameter's dtype
        del t
    wte = params["wte.weight"]
    if head is not None and not torch.equal(read(head).to(wte), wte):
        raise CheckpointError(
            "the checkpoint's lm_head.weight differs from wte.weight; GPT-2 ties them and "
            "so does your model, so this checkpoint cannot be loaded exactly"
        )
    if not tied and all(n != "lm_head.weight" for n, _ in plan.values()):
        params["lm_head.weight"].copy_(wte)  # an untied head: GPT-2's is wte
    return model


def load_weights(model: nn.Module, name_or_path: str | Path) -> nn.Module:
    """Fill ``model`` (any module with GPT-2's parameter names) from a real GPT-2 checkpoint.

    ``name_or_path``: gpt2, gpt2-medium, gpt2-large, gpt2-xl, a folder with config.json +
    model.safetensors, or a .safetensors file. The peak memory is the model plus its largest
    tensor. Every parameter must be filled and every checkpoint tensor used, or
    ``CheckpointError`` names what does not fit. Sets ``model.is_standin`` (True for the
    course's random stand-in) and returns ``model``.
    """
    # The config refuses GPT-2 variants your model does not implement, and gives n_head,
    # which no shape tells; a lone .safetensors file has none.
    st, config, raw, _ = _open(name_or_path)
    load_tensors(model, st.shapes(), st.read, config and config.n_head)
    model.is_standin = bool(raw.get(STANDIN_KEY, False))
    return model


def empty_model(
    config: GPTConfig, device: str | torch.device = "meta", dtype: torch.dtype = torch.float32
) -> GPT:
    """A ``GPT`` whose memory is allocated once, on ``device`` in ``dtype``, and not initialised:
    no fp32 copy, no random init that the weights overwrite. On "meta" it has shapes only."""
    with torch.device("meta"):
        model = GPT(config)
    model = model.to(dtype=dtype).to_empty(device=device)
    model.lm_head.weight = model.wte.weight  # to_empty gives each name its own tensor: tie again
    return model


def load_pretrained(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> GPT:
    """GPT-2 with published weights: a name (gpt2, gpt2-medium, gpt2-large, gpt2-xl), a folder
    holding config.json + model.safetensors, or a .safetensors file. Returned in eval mode on
    ``device`` (default cpu) in ``dtype`` (default float32), with ``model.source`` (where the
    weights came from) and ``model.is_standin`` (a random stand-in, not GPT-2) set."""
    st, config, raw, hub_name = _open(name_or_path)
    config = config or config_from_shapes(st.shapes())  # the tensor shapes imply the rest
    shapes = st.shapes()
    # Checked on the meta device first: a config.json claiming n_embd=10**6 would otherwise
    # ask for terabytes before any tensor is compared.
    _plan(empty_model(config), shapes)
    model = load_tensors(
        empty_model(config, device or "cpu", dtype or torch.float32), shapes, st.read
    )
    model.source = hub_name or str(st.path)
    model.is_standin = bool(raw.get(STANDIN_KEY, False))
    return model.eval()


def from_transformers(hf_model: Any) -> GPT:
    """Our ``GPT`` with the weights of a transformers ``GPT2LMHeadModel`` (same device and dtype)."""
    sd = hf_model.state_dict()
    ref = next(iter(sd.values()))
    model = empty_model(config_from_hf(hf_model.config), ref.device, ref.dtype)
    return load_tensors(model, {k: tuple(v.shape) for k, v in sd.items()}, sd.__getitem__).eval()


def iter_checkpoint(name_or_path: str | Path) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """Each tensor of a checkpoint as ``(key, shape, dtype)``, without reading any weights."""
    st = SafetensorsFile(resolve(name_or_path)[0])
    for key, (dtype, shape, _, _) in st.entries.items():
        yield key, shape, str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------- writing one


def write_model(
    model: GPT, folder: str | Path, extra_config: Mapping[str, Any] | None = None
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` in the layout ``save_pretrained`` uses.

    This is the weights part of the one checkpoint format: transformers, ``load_pretrained``
    and ``checkpoint.load_checkpoint`` all read it. ``config.json`` also carries our whole
    ``GPTConfig`` (under ``gpt2course_config``), so dropout and bias survive a round trip.
    """
    folder = Path(folder)
    write_safetensors(to_hf_state_dict(model), folder / WEIGHTS_FILE)  # makes the folder
    ours = {k: v for k, v in model.config.to_dict().items() if k not in HF_KEYS}
    cfg = hf_config_dict(model.config) | {OUR_CONFIG_KEY: ours}
    cfg |= extra_config or {}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    return folder


def write_standin_checkpoint(
    path: str | Path, n_layer: int = 2, n_head: int = 4, n_embd: int = 128, seed: int = 0
) -> Path:
    """A small GPT-2-format checkpoint with RANDOM weights, for running the course without
    GPT-2's: GPT-2's vocabulary and context, but its text is noise. Marked as a stand-in.

    Not a fresh init: there every LayerNorm is (1, 0) and every bias 0, so a converter that
    drops the biases or swaps ln_1 and ln_2 would still match transformers. Here they are
    far from those values, and c_fc is wide enough that GELU's inputs reach where its tanh
    and erf forms differ; the embeddings stay small, where LayerNorm's eps shows."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.startswith("ln_f.") or ".ln_" in name:
                p.add_(0.5 * noise)  # weights 1 +- 0.5, biases 0 +- 0.5
            elif name.endswith(".bias"):
                p.add_(0.2 * noise)
            elif name.endswith("mlp.c_fc.weight"):
                p.mul_(5.0)  # std 0.1: GELU's inputs of about +-1.5, where its forms differ
            elif name.endswith("mlp.c_proj.weight"):
                p.mul_(4.0)  # and a GELU difference reaches the logits
    return write_model(model, path, extra_config={STANDIN_KEY: STANDIN_VERSION})


def _standin_version(folder: Path) -> Any:
    try:
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get(STANDIN_KEY)
    except (OSError, ValueError):
        return None


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
        if not (folder / WEIGHTS_FILE).is_file() or _standin_version(folder) != STANDIN_VERSION:
            write_standin_checkpoint(folder)
        weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    standin = bool(config and json.loads(config.read_text(encoding="utf-8")).get(STANDIN_KEY))
    if standin:
        print(STANDIN_BANNER)
    return weights, standin
