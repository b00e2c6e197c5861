"""load_weights: real GPT-2 checkpoints (both layouts) into a model written apart from the package,
checked against transformers' own GPT2LMHeadModel."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course.files import CheckpointError
from gpt2course.pretrained import (
    PUBLISHED_GREEDY,
    PUBLISHED_PROMPT,
    greedy_ids,
    load_weights,
)

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

TINY = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=101, context_length=64)


def hf_names(shape: dict) -> dict:
    """The same shape in transformers' GPT2Config names (context_length is n_positions there)."""
    return {("n_positions" if k == "context_length" else k): v for k, v in shape.items()}


# ---------------------------------------------------------------- a GPT-2 written independently
# Nothing below comes from gpt2course: it is what a learner might write after the course.


class Conv1D(nn.Module):
    """GPT-2's original projection: the weight is stored (in, out), y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, C: int, n_head: int, proj):
        super().__init__()
        self.n_head = n_head
        self.c_attn, self.c_proj = proj(C, 3 * C), proj(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, self.n_head, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        w = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        w = w.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        return self.c_proj((w @ v).permute(0, 2, 1, 3).reshape(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, C: int, proj):
        super().__init__()
        self.c_fc, self.c_proj = proj(C, 4 * C), proj(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Layer(nn.Module):
    def __init__(self, C: int, n_head: int, proj):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn, self.mlp = Attention(C, n_head, proj), FeedForward(C, proj)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class MyGPT(nn.Module):
    def __init__(self, vocab_size, context_length, n_embd, n_layer, n_head, proj=nn.Linear):
        super().__init__()
        # The head first, then tied: the shared tensor's first name is then lm_head.weight.
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.lm_head.weight = self.wte.weight
        self.wpe = nn.Embedding(context_length, n_embd)
        self.h = nn.ModuleList(Layer(n_embd, n_head, proj) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for layer in self.h:
            x = layer(x)
        return self.lm_head(self.ln_f(x))


# ---------------------------------------------------------------- real-format checkpoints


def hf_model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        **hf_names({**TINY, **kw}), attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg.bos_token_id = cfg.eos_token_id = None
    return transformers.GPT2LMHeadModel(cfg).eval()


def hub_layout(hf, folder: Path) -> Path:
    """The hub's file: no 'transformer.' prefix, the attention-mask buffers in, no lm_head."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items()}
    sd.pop("lm_head.weight")
    n = hf.config.n_positions
    for i in range(hf.config.n_layer):
        sd[f"h.{i}.attn.bias"] = torch.ones(n, n).tril().view(1, 1, n, n)
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(hf.config.to_dict()))
    return folder


def pretrained_layout(hf, folder: Path) -> Path:
    hf.save_pretrained(folder, safe_serialization=True)
    return folder


LAYOUTS = {"hub": hub_layout, "save_pretrained": pretrained_layout}


def assert_close_to(hf, mine) -> None:
    idx = torch.randint(0, TINY["vocab_size"], (2, 17), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = hf(idx).logits, mine(idx)
    diff = (got - want).abs().max().item()
    assert diff < 1e-4, f"logits differ from transformers' by {diff:.2e}"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("proj", [nn.Linear, Conv1D], ids=["nn.Linear", "Conv1D"])
def test_an_independent_model_takes_the_weights_exactly(tmp_path, layout, proj) -> None:
    hf = hf_model()
    folder = LAYOUTS[layout](hf, tmp_path / layout)
    mine = MyGPT(**TINY, proj=proj)
    assert load_weights(mine, folder) is mine
    assert_close_to(hf, mine)
    assert mine.lm_head.weight is mine.wte.weight, "the tie survives loading"


def test_a_safetensors_file_alone_loads_too(tmp_path) -> None:
    hf = hf_model(n_embd=768, n_head=12, n_layer=1, vocab_size=101, n_positions=64)
    path = hub_layout(hf, tmp_path / "m") / "model.safetensors"
    (tmp_path / "m" / "config.json").unlink()
    mine = MyGPT(vocab_size=101, context_length=64, n_embd=768, n_layer=1, n_head=12)
    load_weights(mine, path)
    assert_close_to(hf, mine)


class Untransposed(nn.Module):
    """A learner's projection that keeps nn.Linear's (out, in) but multiplies like Conv1D."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MyGPT(**{**TINY, "n_head": 2}), "n_head=4"),
        (lambda: MyGPT(**{**TINY, "n_layer": 1}), "no parameter for"),
        (lambda: MyGPT(**{**TINY, "n_layer": 3}), "nothing for your parameter"),
        (lambda: MyGPT(**{**TINY, "vocab_size": 50257}), "vocab_size"),
        (lambda: MyGPT(**TINY, proj=Untransposed), "not transposed"),
    ],
    ids=["wrong-n_head", "too-few-blocks", "too-many-blocks", "wrong-vocab", "untransposed"],
)
def test_a_model_that_does_not_fit_is_told_why(tmp_path, make, message) -> None:
    folder = hub_layout(hf_model(), tmp_path / "hub")
    with pytest.raises(CheckpointError, match=message):
        load_weights(make(), folder)


def test_a_model_without_ln_f_is_told_which_tensor_has_no_home(tmp_path) -> None:
    folder = hub_layout(hf_model(), tmp_path / "hub")
    mine = MyGPT(**TINY)
    del mine.ln_f
    with pytest.raises(CheckpointError, match="ln_f"):
        load_weights(mine, folder)


def test_an_untied_head_takes_gpt2s_tied_weights(tmp_path) -> None:
    hf = hf_model()
    mine = MyGPT(**TINY)
    mine.lm_head.weight = nn.Parameter(torch.zeros_like(mine.wte.weight))  # untied
    load_weights(mine, pretrained_layout(hf, tmp_path / "p"))
    assert_close_to(hf, mine)


def test_a_head_that_differs_from_wte_is_refused(tmp_path) -> None:
    folder = hub_layout(hf_model(), tmp_path / "hub")
    sd = load_file(str(folder / "model.safetensors"))
    sd["lm_head.weight"] = torch.randn_like(sd["wte.weight"])
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        load_weights(MyGPT(**TINY), folder)


def test_a_gpt2_variant_is_refused_for_your_model_too(tmp_path) -> None:
    folder = pretrained_layout(hf_model(), tmp_path / "p")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"activation_function": "relu"}))
    with pytest.raises(CheckpointError, match="activation_function='relu'"):
        load_weights(MyGPT(**TINY), folder)


def test_pickles_are_never_read(tmp_path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(CheckpointError, match="pickle"):
        load_weights(MyGPT(**TINY), tmp_path / "m")


def test_the_package_model_loads_the_same_way(tmp_path) -> None:
    from gpt2course.model import GPT, GPTConfig

    hf = hf_model()
    ours = GPT(GPTConfig(**TINY)).eval()
    load_weights(ours, pretrained_layout(hf, tmp_path / "p"))
    assert_close_to(hf, ours)


def _real_gpt2() -> Path:
    """The real gpt2 checkpoint, if this machine has it (a hub cache, or a network)."""
    from gpt2course.pretrained.load import STANDIN_KEY, resolve

    try:
        weights, config, _ = resolve("gpt2")
    except CheckpointError:
        pytest.skip(
            "no real GPT-2 weights on this machine (no network, nothing in the hub cache); "
            "this test runs wherever the hub is reachable or gpt2 is cached"
        )
    if config and json.loads(config.read_text()).get(STANDIN_KEY):
        pytest.skip("the gpt2 in this cache is the course's random stand-in, not OpenAI's weights")
    return weights.parent


def test_real_gpt2_in_an_independent_model_writes_the_published_greedy_text() -> None:
    """Where OpenAI's weights exist, a model written apart from the package reproduces the
    greedy continuation recorded in transformers' own test suite."""
    folder = _real_gpt2()
    mine = MyGPT(vocab_size=50257, context_length=1024, n_embd=768, n_layer=12, n_head=12).eval()
    load_weights(mine, folder)
    assert greedy_ids(mine, PUBLISHED_PROMPT, len(PUBLISHED_GREEDY)) == PUBLISHED_GREEDY


def test_published_greedy_text_is_the_one_transformers_records() -> None:
    """The ids are GPT-2's tokens of the recorded sentence (tiktoken, independent of us)."""
    from gpt2course import assets

    enc = assets.tiktoken_gpt2()
    assert enc.decode(PUBLISHED_PROMPT) == "The dog"
    assert enc.decode(PUBLISHED_GREEDY) == (
        " was found in a field near the intersection of West and West Streets.\n\nThe dog"
    )


def test_a_random_model_does_not_pass_the_published_check() -> None:
    torch.manual_seed(0)
    tiny = MyGPT(vocab_size=50257, context_length=64, n_embd=32, n_layer=1, n_head=4).eval()
    assert greedy_ids(tiny, PUBLISHED_PROMPT, len(PUBLISHED_GREEDY)) != PUBLISHED_GREEDY
