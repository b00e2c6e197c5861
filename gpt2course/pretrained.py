"""OpenAI's GPT-2 weights in our ``GPT``: exact, safe (safetensors only) and light on memory.

GPT-2's checkpoint was written for a TensorFlow model whose linear layers were "Conv1D"s
storing their weight as (in, out); ``nn.Linear`` stores (out, in). So four weights per block
are transposed on the way in: ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``.
Every other name and shape already matches our modules, because ``model.py`` uses the
checkpoint's names.

``load_pretrained("gpt2")`` takes the file from the Hugging Face hub (through its normal
cache, so ``HF_HUB_OFFLINE=1`` works once it is there); a local folder or ``.safetensors``
file works too. Tensors are read one at a time straight into a model whose memory was
allocated once, in the target dtype, so loading needs little more than the model's size.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from .files import CheckpointError, atomic_copy, atomic_path, atomic_write_text, sha256_of
from .model import GPT, GPTConfig

# The hub names of the four sizes; the short names are what the course uses.
HUB_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
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

# Marks a checkpoint made by write_standin_checkpoint(), so nobody mistakes its text for GPT-2's.
STANDIN_KEY = "gpt2course_standin"
STANDIN_BANNER = (
    "*** STAND-IN MODEL: small, with RANDOM weights, not GPT-2. Every text it writes is noise "
    "and every number about its quality is meaningless. ***"
)

OFFLINE_HELP = (
    "To use GPT-2 without a network: on a machine with one, run "
    "`python -m gpt2course assets bundle DIR --models gpt2` (or download the model folder "
    "'openai-community/gpt2' with config.json and model.safetensors), copy it here, then run "
    "`python -m gpt2course assets seed --from DIR` and set HF_HUB_OFFLINE=1; "
    "or pass a local folder / .safetensors file instead of a name."
)


# ----------------------------------------------------------------------------- names, shapes


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
    by_size = {
        s["n_embd"]: s["n_head"] for s in (GPTConfig.from_name(n).to_dict() for n in HUB_REPOS)
    }
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


# ----------------------------------------------------------------------------- building


def _empty_model(config: GPTConfig, device: torch.device, dtype: torch.dtype) -> GPT:
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
    model = _empty_model(config, ref.device, ref.dtype)
    _load_tensors(model, config, {k: tuple(v.shape) for k, v in sd.items()}, lambda k: sd[k])
    return model.eval()


@torch.no_grad()
def _load_tensors(
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


# ----------------------------------------------------------------------------- safetensors files

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    """A .safetensors file read one tensor at a time with plain reads.

    Not memory-mapped on purpose: every page of a mapped file that is touched counts in the
    process's memory until it is unmapped, which would double the peak for a big model.
    The header is checked against the file's size, so a truncated download is caught up front.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"no such checkpoint file: {self.path}")
        size = self.path.stat().st_size
        what = f"{self.path} is not a valid .safetensors file"
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{what}: it is only {size} bytes (empty or truncated?)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100_000_000):
                raise CheckpointError(
                    f"{what}: its header claims {n} bytes but the file has {size} (corrupt or truncated)"
                )
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CheckpointError(
                    f"{what}: its header is not JSON ({e}); the file is corrupt"
                ) from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{what}: its header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        self.data_start = 8 + n
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        end_max = 0
        for key, e in header.items():
            try:
                dtype = _DTYPES[e["dtype"]]
                shape = tuple(int(s) for s in e["shape"])
                begin, end = (int(x) for x in e["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{what}: bad header entry for {key!r}: {e!r}") from None
            nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            if end - begin != nbytes or begin < 0:
                raise CheckpointError(
                    f"{what}: tensor {key!r} has {end - begin} bytes, its shape needs {nbytes}"
                )
            self.entries[key] = (dtype, shape, begin, end)
            end_max = max(end_max, end)
        if self.data_start + end_max > size:
            raise CheckpointError(
                f"{self.path} is truncated: its tensors need {self.data_start + end_max} bytes but the "
                f"file has {size}. Download it again (an interrupted download?)."
            )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape, by key."""
        return {k: e[1] for k, e in self.entries.items()}

    def keys_in_file_order(self) -> list[str]:
        """The keys sorted by where their bytes are, so reading is sequential."""
        return sorted(self.entries, key=lambda k: self.entries[k][2])

    def read(self, key: str) -> torch.Tensor:
        """One tensor, freshly allocated on the CPU."""
        dtype, shape, begin, end = self.entries[key]
        buf = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(buf) != len(buf):
                raise CheckpointError(f"{self.path} ended early while reading {key!r}: truncated?")
        if not buf:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(shape)


def write_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write tensors to a .safetensors file atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata=dict(metadata or {"format": "pt"}),
        )
    return path


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


# ----------------------------------------------------------------------------- loading


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, read from the environment now (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _cached(hf_hub_download, kw: dict) -> Path | None:
    try:
        return Path(hf_hub_download(filename=WEIGHTS_FILE, local_files_only=True, **kw))
    except Exception:
        return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all: without a network, fail in seconds, not after retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(name: str) -> tuple[Path, Path | None]:
    """The cached paths of a hub model's weights and config, downloading them if needed."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError(
            f"loading {name!r} by name needs huggingface_hub (pip install huggingface_hub). {OFFLINE_HELP}"
        ) from None
    repo = HUB_REPOS[name]
    kw = dict(repo_id=repo, cache_dir=str(hub_cache_dir()))
    # The published weights never change: a cached copy is used without asking the network.
    cached = _cached(hf_hub_download, kw)
    offline = _offline() or (cached is None and not _hub_reachable())
    try:
        weights = cached or Path(
            hf_hub_download(filename=WEIGHTS_FILE, local_files_only=offline, **kw)
        )
    except Exception as e:  # network errors come in many types, all need the same advice
        if _offline():
            why = "is not in the local hub cache and HF_HUB_OFFLINE is set"
        elif offline:
            why = f"is not in the local hub cache ({hub_cache_dir()}) and the hub is not reachable (no network?)"
        else:
            why = f"could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        raise CheckpointError(f"{repo}/{WEIGHTS_FILE} {why}. {OFFLINE_HELP}") from None
    try:
        config = Path(
            hf_hub_download(
                filename=CONFIG_FILE, local_files_only=offline or cached is not None, **kw
            )
        )
    except Exception:
        config = None  # the published sizes are known without it
    return weights, config


def _remove_from_hub_cache(weights: Path) -> None:
    """Delete a bad cached file (the snapshot link and its blob) so the next try downloads it."""
    blob = weights.resolve()
    weights.unlink(missing_ok=True)
    if blob != weights:
        blob.unlink(missing_ok=True)


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
        try:
            raw_config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_path} is not valid JSON ({e})") from None
        if _is_legacy_config(raw_config):
            return _load_legacy(weights, raw_config, device, dtype)
        if OUR_CONFIG_KEY in raw_config:
            config = _our_config(raw_config[OUR_CONFIG_KEY], config_path)
        else:
            config = config_from_hf(raw_config)
    elif hub_name is not None:
        config = GPTConfig.from_name(hub_name)
    else:
        config = infer_config(st.shapes())
    model = _empty_model(config, device, dtype)
    order = st.keys_in_file_order()
    _load_tensors(model, config, {k: st.entries[k][1] for k in order}, st.read)
    model.source = hub_name or str(weights)
    model.is_standin = bool(raw_config.get(STANDIN_KEY, False))
    return model.eval()


def _our_config(d: Any, where: Path) -> GPTConfig:
    try:
        return GPTConfig(**d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {OUR_CONFIG_KEY} is not a valid GPTConfig ({e})") from None


def _is_legacy_config(raw: Mapping[str, Any]) -> bool:
    """A ``config.json`` written by gpt2course before 0.2: a bare GPTConfig, our weight names."""
    return "model_type" not in raw and "n_positions" in raw and "bias" in raw


def _load_legacy(weights: Path, raw: Mapping[str, Any], device, dtype) -> GPT:
    """Read the first checkpoint format (our parameter names, no transposes)."""
    from safetensors.torch import load_model

    model = GPT(_our_config(raw, weights.parent / CONFIG_FILE))
    try:
        load_model(model, str(weights), strict=True, device=str(device))
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"could not read the tensors in {weights}: {e}") from e
    model.to(device=device, dtype=dtype)
    model.source, model.is_standin = str(weights), False
    return model.eval()


# ----------------------------------------------------------------------------- offline bundle


def _manifest_entry(folder: Path) -> dict[str, str]:
    return {f: sha256_of(folder / f) for f in (WEIGHTS_FILE, CONFIG_FILE)}


def bundle_models(names: list[str], dest: Path) -> list[Path]:
    """Copy hub models (downloading them once) to ``dest/<name>/`` with a sha256 manifest."""
    dest = Path(dest)
    written = []
    for name in names:
        key = str(name).removeprefix("openai-community/")
        if key not in HUB_REPOS:
            raise ValueError(f"unknown model name {name!r}; choose from {', '.join(HUB_REPOS)}")
        weights, config = _from_hub(key)
        SafetensorsFile(weights)  # never bundle a broken file
        if config is None:
            raise CheckpointError(f"{HUB_REPOS[key]} has no {CONFIG_FILE} in the cache")
        out = dest / key
        out.mkdir(parents=True, exist_ok=True)
        for src, fname in ((weights, WEIGHTS_FILE), (config, CONFIG_FILE)):
            written.append(atomic_copy(src, out / fname))
        revision = weights.parent.name  # the snapshot folder is named by the commit
        manifest = {"repo": HUB_REPOS[key], "revision": revision, "sha256": _manifest_entry(out)}
        written.append(
            atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        )
    return written


def seed_models(src: Path) -> list[str]:
    """Place the models of an offline bundle (``src/<name>/``) in the hub cache, verified, so
    that ``load_pretrained(name)`` works with ``HF_HUB_OFFLINE=1``. Returns the names seeded."""
    src = Path(src)
    seeded = []
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        key = folder.name
        if key not in HUB_REPOS:
            raise CheckpointError(
                f"{folder}: not a model the course knows ({', '.join(HUB_REPOS)})"
            )
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise CheckpointError(
                f"{folder} has no manifest.json; rebuild the bundle with `assets bundle`"
            )
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        got = (
            _manifest_entry(folder)
            if all((folder / f).is_file() for f in manifest["sha256"])
            else {}
        )
        if got != manifest["sha256"]:
            bad = [f for f in manifest["sha256"] if got.get(f) != manifest["sha256"][f]]
            raise CheckpointError(
                f"{folder}: {', '.join(bad)} missing or corrupt (sha256 mismatch); nothing was imported"
            )
        SafetensorsFile(folder / WEIGHTS_FILE)
        _place_in_hub_cache(
            HUB_REPOS[key], manifest.get("revision") or "0" * 40, folder, manifest["sha256"]
        )
        seeded.append(key)
    return seeded


def _place_in_hub_cache(repo: str, revision: str, folder: Path, sha: Mapping[str, str]) -> None:
    """Write files into huggingface_hub's layout: blobs/<sha256>, snapshots/<rev>/<file> linking
    to them, refs/main naming the revision. Each file lands complete or not at all."""
    root = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for fname, digest in sha.items():
        blob = root / "blobs" / digest
        if not blob.is_file():
            atomic_copy(folder / fname, blob)
        link = snap / fname
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(os.path.relpath(blob, snap))
        except OSError:  # no symlinks (some Windows setups): a copy works the same
            shutil.copyfile(blob, link)
    (root / "refs").mkdir(exist_ok=True)
    atomic_write_text(root / "refs" / "main", revision)


def iter_checkpoint(name_or_path: str | Path) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """Each tensor of a checkpoint as ``(key, shape, dtype)``, without reading any weights."""
    weights, _, _ = resolve(name_or_path)
    st = SafetensorsFile(weights)
    for key in st.keys_in_file_order():
        dtype, shape, _, _ = st.entries[key]
        yield key, shape, str(dtype).removeprefix("torch.")


# ----------------------------------------------------------------------------- for the notebooks


def course_checkpoint(default: str = "gpt2") -> tuple[Path, bool]:
    """The weights file the notebooks use, and whether it is a random stand-in.

    ``$GPT2COURSE_MODEL`` (a name, folder or file) wins, else ``default``. When neither can be
    had (no network, nothing cached), a small random stand-in is written to the course cache
    so that the notebook still runs; it says so loudly.
    """
    from .assets import cache_dir

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


def load_weights(model, name_or_path):  # noqa: ANN001, ANN201 (typed in .weights)
    """Fill any module with GPT-2's parameter names from a checkpoint; see ``weights.load_weights``."""
    from .weights import load_weights as load  # weights builds on this module: import late

    return load(model, name_or_path)
