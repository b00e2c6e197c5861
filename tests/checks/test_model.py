"""check_gpt against the mistakes a learner makes assembling GPT-2 from blocks (part 5)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn as nn

from gpt2course import checks
from gpt2course.model import Block


class GPT(nn.Module):
    """A right answer, written as a learner would: the notebook's exercise."""

    def __init__(
        self,
        config,
        tie=True,
        init=True,
        scale_proj=True,
        head_bias=False,
        as_list=False,
        init_linear_only=False,
        shared_block=False,
        init_everything=False,
    ):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_length, config.n_embd)
        if shared_block:  # one Block, n_layer times over
            blocks = [Block(config)] * config.n_layer
        else:
            blocks = [Block(config) for _ in range(config.n_layer)]
        self.h = blocks if as_list else nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=head_bias)
        if tie:
            self.lm_head.weight = self.wte.weight
        if init_everything:  # every parameter from N(0, 0.02), LayerNorms included
            for p in self.parameters():
                nn.init.normal_(p, 0.0, 0.02)
        elif init:
            kinds = nn.Linear if init_linear_only else (nn.Linear, nn.Embedding)
            for m in self.modules():
                if isinstance(m, kinds):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            if scale_proj:
                for n, p in self.named_parameters():
                    if n.endswith("c_proj.weight"):
                        nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    def embed(self, idx):
        return self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def variant(**kw):
    """A GPT class that differs from the right one in __init__ only."""

    class Variant(GPT):
        def __init__(self, config):
            super().__init__(config, **kw)

    return Variant


class NoPositions(GPT):
    def embed(self, idx):
        return self.wte(idx)


class PositionsFromTokens(GPT):
    def embed(self, idx):
        return self.wte(idx) + self.wpe(idx)


class NoFinalNorm(GPT):
    def forward(self, idx):
        x = self.embed(idx)
        for block in self.h:
            x = block(x)
        return self.lm_head(x)


class BlocksNotChained(GPT):
    def forward(self, idx):
        x = self.embed(idx)
        for block in self.h:
            out = block(x)
        return self.lm_head(self.ln_f(out))


class Softmaxed(GPT):
    def forward(self, idx):
        return super().forward(idx).softmax(-1)


class ReturnsHidden(GPT):
    def forward(self, idx):
        x = self.embed(idx)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class ReturnsTuple(GPT):
    def forward(self, idx):
        return super().forward(idx), None


class PositionsOnTheCPU(GPT):
    def embed(self, idx):
        return self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))


class PositionsUpToOne(GPT):
    """Right, written differently: positions as a buffer sliced to T."""

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("pos", torch.arange(config.context_length), persistent=False)

    def embed(self, idx):
        return self.wte(idx) + self.wpe(self.pos[: idx.size(1)])[None]


class MaskBufferBlock(Block):
    """A Block whose attention keeps nanoGPT's mask buffer (attn.bias)."""

    def __init__(self, config):
        super().__init__(config)
        n = config.context_length
        self.attn.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))


class WithMaskBuffers(GPT):
    """Right: blocks with an extra (non-parameter) buffer, checked without naming the Block."""

    def __init__(self, config):
        super().__init__(config)
        self.h = nn.ModuleList([MaskBufferBlock(config) for _ in range(config.n_layer)])
        for n, p in self.named_parameters():
            if n.endswith("weight") and p.dim() == 2 and n != "wte.weight":
                nn.init.normal_(
                    p,
                    0.0,
                    0.02 / (math.sqrt(2 * config.n_layer) if n.endswith("c_proj.weight") else 1),
                )
            elif n.endswith("bias") and ".ln_" not in n:
                nn.init.zeros_(p)


class Stub(GPT):
    def forward(self, idx):
        raise NotImplementedError


WRONG = [
    (NoPositions, "position embeddings are missing"),
    (PositionsFromTokens, "wpe is looked up with the token ids"),
    (NoFinalNorm, "ln_f is missing"),
    (BlocksNotChained, "chain them"),
    (Softmaxed, "softmax"),
    (ReturnsHidden, "hidden states"),
    (ReturnsTuple, "tuple"),
    (variant(tie=False), "not tied"),
    (variant(head_bias=True), "bias"),
    (variant(as_list=True), "ModuleList"),
    (variant(init=False), "N(0, 0.02)"),
    (variant(scale_proj=False), "1/sqrt(2 * n_layer)"),
    # wte gets N(0, 0.02) through the tied head; wpe keeps nn.Embedding's N(0, 1).
    (variant(init_linear_only=True), "wpe"),
    (variant(shared_block=True), "the same Block"),
    (variant(init_everything=True), "LayerNorm"),
    (PositionsOnTheCPU, "idx.device"),
]


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("GPT2COURSE_STRICT_CHECKS", "1")
    monkeypatch.setenv("GPT2COURSE_WORKBENCH", "/nonexistent/workbench-off")


@pytest.mark.parametrize(("cls", "hint"), WRONG, ids=[c.__name__ + ":" + h for c, h in WRONG])
def test_wrong_gpt_is_refused_with_the_bug_named(strict, cls, hint) -> None:
    with pytest.raises(checks.CheckFailure, match=re.escape(hint)):
        checks.check_gpt(cls)


@pytest.mark.parametrize("cls", [GPT, PositionsUpToOne, WithMaskBuffers])
def test_a_right_gpt_written_differently_passes(strict, capsys, cls) -> None:
    assert checks.check_gpt(cls) is cls
    assert "✓ GPT" in capsys.readouterr().out


def test_a_stub_is_not_done_yet_and_falls_back_to_the_reference(capsys) -> None:
    Ref = checks.check_gpt(Stub)
    assert "not done yet" in capsys.readouterr().out
    model = Ref(checks.model._config())
    assert model(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 61)


def test_the_fallback_keeps_the_block_it_was_given(capsys) -> None:
    class MyBlock(Block):
        pass

    Ref = checks.check_gpt(NoPositions, block=MyBlock)
    assert "✗ GPT" in capsys.readouterr().out
    assert all(type(b) is MyBlock for b in Ref(checks.model._config()).h)
