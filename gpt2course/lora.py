"""LoRA from scratch: low-rank adapters beside frozen linear layers (Hu et al., 2021).

A frozen layer computes ``x W^T + b``. LoRA learns a change to ``W`` of rank ``r``,
``delta W = (alpha / r) * B A`` with ``A`` (r, in) and ``B`` (out, r), so the layer becomes
``x W^T + b + (alpha / r) * x A^T B^T``. ``B`` starts at zero: the adapted model starts out
exactly as the base model, and training moves it away only as far as the data asks.

``LoRALinear`` is an ``nn.Linear`` that keeps the base ``weight`` and ``bias`` under their
usual names, so a model with adapters still loads the base checkpoint, and a merged
model is a plain model again.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# Attention's fused q/k/v projection and both MLP layers, as in the issue and the LoRA paper's
# advice to adapt the attention weights first.
DEFAULT_TARGETS: tuple[str, ...] = ("c_attn", "mlp.c_fc", "mlp.c_proj")


class LoRALinear(nn.Linear):
    """A linear layer with a frozen base ``weight``/``bias`` and a trainable low-rank update."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        alpha: float,
        bias: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        self.rank = rank
        self.alpha = float(alpha)
        # alpha / r keeps the update's size steady when r changes, so one learning rate
        # works across ranks (section 4.1 of the paper).
        self.scaling = self.alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
        self.lora_dropout = nn.Dropout(dropout)
        # A random, B zero: the product B A is zero, yet gradients reach B from the first step.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, rank: int, alpha: float, dropout: float = 0.0
    ) -> LoRALinear:
        """Wrap an existing layer: its weight and bias are shared (not copied) and frozen."""
        w = linear.weight
        return _wrap(cls, linear, rank, alpha, dropout=dropout, device=w.device, dtype=w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)  # (..., out)
        # Two thin matmuls through the rank-r bottleneck; never form the (out, in) update.
        update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., out)
        return base + update * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"


def _shared_weights(model: nn.Module) -> set[int]:
    seen = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    return {pid for pid, n in seen.items() if n > 1}


def apply_lora(
    model: nn.Module,
    targets: Iterable[str] = DEFAULT_TARGETS,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    layer_cls: type[nn.Linear] | None = None,
) -> nn.Module:
    """Replace each ``nn.Linear`` whose name ends with a target by a ``LoRALinear``; freeze the rest.

    ``targets`` are module-name suffixes on dot boundaries: ``"c_attn"`` matches
    ``h.0.attn.c_attn``; ``"mlp.c_proj"`` matches the MLP's projection but not attention's.
    ``layer_cls`` swaps in another adapter class built as ``layer_cls(in, out, rank, alpha,
    bias=...)`` (the notebook's own). Returns the same model, changed in place.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise ValueError("targets is empty; name the layers to adapt, e.g. ['c_attn']")
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    if _lora_layers(model):
        raise ValueError(
            "this model already has LoRA adapters; merge_lora() it or start from the base"
        )
    shared = _shared_weights(model)
    chosen = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)
    ]
    if not chosen:
        linears = sorted(
            {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ValueError(
            f"no linear layer matches targets {targets}; this model's linear layers end in: "
            f"{', '.join(linears)}"
        )
    for name, linear in chosen:
        if id(linear.weight) in shared:
            raise ValueError(
                f"{name}.weight is shared with another module (GPT-2 ties lm_head to wte); "
                "an adapter there could not be merged without changing both. Leave it out of targets."
            )
    for p in model.parameters():
        p.requires_grad_(False)
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if layer_cls is None:
            new = LoRALinear.from_linear(linear, rank, alpha, dropout)
        else:  # yours, built as layer_cls(in, out, rank, alpha, bias=...)
            new = _wrap(layer_cls, linear, rank, alpha)
        setattr(parent, child, new)
    return model


def _wrap(
    layer_cls: type[nn.Linear], linear: nn.Linear, rank: int, alpha: float, **kw
) -> nn.Linear:
    """An adapter layer around ``linear``'s own weight and bias (frozen), on its device."""
    bias = linear.bias is not None
    layer = layer_cls(linear.in_features, linear.out_features, rank, alpha, bias=bias, **kw)
    layer.weight, layer.bias = linear.weight, linear.bias
    for p in (layer.weight, layer.bias):
        if p is not None:
            p.requires_grad_(False)
    return layer.to(linear.weight.device, linear.weight.dtype)


def mark_only_lora_trainable(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the adapters' ``lora_A`` and ``lora_B``."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(("lora_A", "lora_B")))
    return model


def merged_weight(layer: nn.Module) -> torch.Tensor:
    """The one weight that does the work of base plus adapter: W + (alpha / r) B A, (out, in)."""
    delta = (layer.lora_B @ layer.lora_A) * layer.scaling  # (out, r) @ (r, in) -> (out, in)
    return layer.weight + delta.to(layer.weight.dtype)


@torch.no_grad()
def merge_lora(
    model: nn.Module, weight_fn: Callable[[nn.Module], torch.Tensor] = merged_weight
) -> nn.Module:
    """Fold every adapter into its weight and put plain ``nn.Linear`` layers back; in place.

    The merged model has no extra cost at inference and the base model's state-dict keys.
    ``weight_fn(layer)`` gives each merged weight (yours, from part 8's exercise, fits).
    """
    for name, m in _lora_layers(model).items():
        w = m.weight
        linear = nn.Linear(m.in_features, m.out_features, m.bias is not None, w.device, w.dtype)
        linear.weight.copy_(weight_fn(m))
        if m.bias is not None:
            linear.bias.copy_(m.bias)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, linear)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, by their names in the model."""
    return {k: v for k, v in model.state_dict().items() if k.endswith((".lora_A", ".lora_B"))}


def _lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    # Any layer with adapters counts, the reference LoRALinear or a learner's own.
    return {n: m for n, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "lora_B")}


def save_adapters(model: nn.Module, path: str | Path) -> Path:
    """Write the adapters alone (a few MB, not the whole model) to a ``.safetensors`` file.

    The rank, alpha and adapted layer names go in the file's metadata, so ``load_adapters``
    can rebuild them on a fresh base model.
    """
    from safetensors.torch import save_file

    layers = _lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters to save; call apply_lora() first")
    first = next(iter(layers.values()))
    rank = first.lora_A.shape[0]
    meta = {
        "format": "gpt2course-lora",
        "rank": str(rank),
        "alpha": repr(float(first.scaling) * rank),
        "layers": json.dumps(sorted(layers)),
    }
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"adapter files end in .safetensors, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    save_file(tensors, str(path), metadata=meta)
    return path


def load_adapters(model: nn.Module, path: str | Path) -> nn.Module:
    """Load adapters saved by ``save_adapters``; on a model without adapters, add them first."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no adapter file at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    if meta.get("format") != "gpt2course-lora":
        raise ValueError(f"{path} is not an adapter file written by save_adapters()")
    layers = json.loads(meta["layers"])
    if not _lora_layers(model):
        apply_lora(model, targets=layers, rank=int(meta["rank"]), alpha=float(meta["alpha"]))
    have = set(lora_state_dict(model))
    missing, extra = sorted(have - set(tensors)), sorted(set(tensors) - have)
    if missing or extra:
        raise ValueError(
            f"the adapters in {path} do not fit this model (missing: {missing[:4]}, "
            f"unexpected: {extra[:4]}); load them on the same base architecture and targets"
        )
    state = model.state_dict()
    for k, v in tensors.items():
        if state[k].shape != v.shape:
            raise ValueError(
                f"{k} has shape {tuple(v.shape)} in {path} but {tuple(state[k].shape)} in the model; "
                "was it saved with another rank or model size?"
            )
    model.load_state_dict(tensors, strict=False)
    return model


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; tied weights count once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def training_memory_bytes(model: nn.Module, optimizer_states: int = 2) -> dict[str, int]:
    """Bytes held by weights, gradients and optimizer state (AdamW keeps 2 per trainable
    parameter), not counting activations. The part that LoRA shrinks."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    # AdamW keeps its moments in the parameter's dtype.
    sizes = {"weights": weights, "gradients": grads, "optimizer": optimizer_states * grads}
    return {**sizes, "total": sum(sizes.values())}
