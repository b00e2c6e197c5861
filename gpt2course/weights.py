"""OpenAI's weights into any module that uses GPT-2's parameter names: yours or the package's.

A checkpoint names its tensors ``wte.weight``, ``h.0.attn.c_attn.weight``, ... (the hub's file)
or ``transformer.h.0...`` (what ``save_pretrained`` writes). A model whose parameters have
those names takes them, whatever classes it is built from. The one real difference is the
layout of the four projection weights: GPT-2 was written with a ``Conv1D`` that stores them
as (in, out), while ``nn.Linear`` stores (out, in), so those are transposed on the way in.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from .pretrained import (
    STANDIN_KEY,
    CheckpointError,
    SafetensorsFile,
    _natural,
    is_conv1d,
    our_name,
    resolve,
)

__all__ = ["greedy_ids", "load_weights", "matches_published_greedy"]


def _owner(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name.rpartition(".")[0])


def _fit(model: nn.Module, name: str, stored: tuple[int, ...], n_head: int | None) -> bool:
    """Whether checkpoint tensor ``name`` must be transposed for ``model``; raise if it cannot fit."""
    param = model.get_parameter(name)
    want = tuple(param.shape)
    linear = isinstance(_owner(model, name), nn.Linear)
    transpose = is_conv1d(name) and linear  # nn.Linear keeps (out, in); the file has (in, out)
    got = stored[::-1] if transpose else stored
    if got == want:
        return transpose
    if is_conv1d(name) and stored == want and not linear:
        return False
    if is_conv1d(name) and stored[::-1] == want:
        raise CheckpointError(
            f"{name}: the checkpoint stores {stored} (Conv1D, (in, out)) and your parameter is "
            f"{want}: a Conv1D weight not transposed? An nn.Linear takes it transposed, .t()"
        )
    hint = ""
    if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
        hint = " (c_attn projects C to 3 * C: q, k and v in one matrix)"
    elif name.startswith(("wte.", "wpe.")):
        hint = " (build the model with the checkpoint's config: vocab_size and n_positions)"
    where = f"; the checkpoint has n_head={n_head}" if n_head else ""
    raise CheckpointError(
        f"{name}: the checkpoint's tensor has shape {stored}, your parameter {want}{hint}{where}"
    )


def _check_heads(model: nn.Module, n_head: int | None) -> None:
    """The number of heads changes no shape, so a wrong one would load and give wrong logits."""
    if n_head is None:
        return
    for name, module in model.named_modules():
        heads = getattr(module, "n_head", None)
        if name.endswith(".attn") and isinstance(heads, int) and heads != n_head:
            raise CheckpointError(
                f"{name}.n_head is {heads} but the checkpoint was trained with n_head={n_head}: "
                "the weights would load and the attention would be wrong. Build the model from "
                "the checkpoint's config"
            )


@torch.no_grad()
def load_weights(model: nn.Module, name_or_path: str | Path) -> nn.Module:
    """Fill ``model`` (any module with GPT-2's parameter names) from a real GPT-2 checkpoint.

    ``name_or_path`` is what ``load_pretrained`` takes: gpt2, gpt2-medium, gpt2-large, gpt2-xl,
    a folder with config.json + model.safetensors, or a .safetensors file. Tensors are read
    and copied one at a time, so the peak memory is the model plus its largest tensor; only
    safetensors files are read (a pickle can run code). Every parameter must be filled and
    every checkpoint tensor used, or ``CheckpointError`` names the first that does not fit.
    Sets ``model.is_standin`` (True for the course's random stand-in) and returns ``model``.
    """
    weights, config_path, _ = resolve(name_or_path)
    st = SafetensorsFile(weights)
    raw = {}
    if config_path is not None:
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{config_path} is not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{config_path} holds a JSON {type(raw).__name__}, not an object")
    n_head = raw.get("n_head") if isinstance(raw.get("n_head"), int) else None
    _check_heads(model, n_head)

    params = dict(model.named_parameters(remove_duplicate=False))
    # GPT-2 ties its head to the token embedding: then both names hold one tensor.
    tied = "lm_head.weight" not in params or params["lm_head.weight"] is params.get("wte.weight")
    plan: dict[str, str] = {}
    unused = []
    for key in st.keys_in_file_order():
        name = our_name(key)
        if name is None:
            continue  # the hub file's attention-mask buffers: constants, not weights
        if name == "lm_head.weight" and tied:
            continue  # the same matrix as wte.weight
        if name not in params:
            unused.append(key)
            continue
        plan[key] = name
    missing = sorted(set(params) - set(plan.values()) - {"lm_head.weight"}, key=_natural)
    if unused:
        raise CheckpointError(
            f"your model has no parameter for the checkpoint's {', '.join(unused[:4])}"
            f"{' and more' if len(unused) > 4 else ''}: are your modules named as GPT-2's "
            "(wte, wpe, h.N.ln_1, h.N.attn.c_attn, h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc, "
            "h.N.mlp.c_proj, ln_f), with bias=True, and as many blocks as the checkpoint?"
        )
    if missing:
        raise CheckpointError(
            f"the checkpoint has nothing for your parameter(s) {', '.join(missing[:4])}"
            f"{' and more' if len(missing) > 4 else ''}: GPT-2 has no such weights (a layer "
            "GPT-2 does not have, or a name that differs from GPT-2's?)"
        )
    transposes = {key: _fit(model, name, st.entries[key][1], n_head) for key, name in plan.items()}
    for key, name in plan.items():
        p = params[name]
        t = st.read(key)
        p.copy_(t.t() if transposes[key] else t)  # copy_ casts to the parameter's dtype
        del t
    if not tied:  # an untied head: GPT-2's is wte, unless the checkpoint has its own
        head = next((k for k in st.entries if our_name(k) == "lm_head.weight"), None)
        model.get_parameter("lm_head.weight").copy_(
            st.read(head) if head else model.get_parameter("wte.weight")
        )
    model.is_standin = bool(raw.get(STANDIN_KEY, False))
    return model


# Recorded outside this project: Hugging Face transformers' test suite
# (tests/models/gpt2/test_modeling_gpt2.py, test_gpt2_sample / greedy generation of "The dog")
# gives these 18 new tokens for gpt2 under greedy decoding:
# "The dog was found in a field near the intersection of West and West Streets.\n\nThe dog"
PUBLISHED_PROMPT = [464, 3290]
PUBLISHED_GREEDY = [373, 1043, 287, 257, 2214, 1474, 262, 16246, 286, 2688, 290, 2688, 27262, 13]
PUBLISHED_GREEDY += [198, 198, 464, 3290]
PUBLISHED_SOURCE = "transformers, tests/models/gpt2/test_modeling_gpt2.py (greedy 'The dog')"


@torch.no_grad()
def greedy_ids(model: nn.Module, ids: list[int], n: int) -> list[int]:
    """``n`` greedy tokens after ``ids`` from any model mapping (1, T) ids to (1, T, vocab) logits."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    for _ in range(n):
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out  # (1, T, vocab)
        x = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x[0, len(ids) :].tolist()


def matches_published_greedy(model: nn.Module) -> bool:
    """Whether ``model`` continues "The dog" greedily as the real gpt2 does (recorded outside)."""
    return greedy_ids(model, PUBLISHED_PROMPT, len(PUBLISHED_GREEDY)) == PUBLISHED_GREEDY
