"""The CUDA-graph decoder (gpt2course.fastgen) gives the tokens of plain generation and of transformers."""

from __future__ import annotations

import pytest
import torch
from test_pretrained import TINY, hf_model  # the transformers oracle

from gpt2course import pretrained

pytest.importorskip("transformers")


def hf_greedy(hf, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding by full recompute on the last context_length tokens: the plain definition."""
    ctx = hf.config.n_positions
    with torch.no_grad():
        for _ in range(n):
            nxt = hf(idx[:, -ctx:]).logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    return idx


@pytest.mark.parametrize("batch", [1, 3])
def test_fastgen_greedy_matches_transformers(batch):
    from gpt2course.fastgen import FastGenerator

    hf = hf_model(seed=8)
    gen = FastGenerator(pretrained.from_transformers(hf))
    torch.manual_seed(2)
    idx = torch.randint(0, TINY["vocab_size"], (batch, 5))
    expected = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=12, do_sample=False, pad_token_id=0
    )
    assert torch.equal(gen.generate(idx, 12, temperature=0), expected)
    assert torch.equal(gen.generate(idx, 12, temperature=0), expected)  # reused cache: same
    fixed = FastGenerator(gen.model, max_len=40)  # one longer cache for calls of any length
    assert torch.equal(fixed.generate(idx, 12, temperature=0), expected)
    assert torch.equal(fixed.generate(idx, 4, temperature=0), expected[:, :9])
    short = FastGenerator(gen.model, max_len=8)  # too short for this call: it grows
    assert torch.equal(short.generate(idx, 12, temperature=0), expected)


def test_fastgen_slides_past_the_context_like_full_recompute():
    from gpt2course.fastgen import FastGenerator

    hf = hf_model(seed=9, n_positions=16)
    gen = FastGenerator(pretrained.from_transformers(hf))
    idx = torch.randint(0, TINY["vocab_size"], (1, 10))
    assert torch.equal(gen.generate(idx, 20, temperature=0), hf_greedy(hf, idx, 20))


def test_fastgen_crops_a_long_prompt_and_stops_at_eos_like_generate():
    from gpt2course.fastgen import FastGenerator
    from gpt2course.generation import generate

    model = pretrained.from_transformers(hf_model(n_positions=16))
    idx = torch.randint(0, TINY["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(0))
    want = generate(model, idx, 6, temperature=0)
    got = FastGenerator(model).generate(idx, 6, temperature=0)
    assert torch.equal(got[:, -6:], want[:, -6:])
    eos = int(want[0, 21])  # row 0 produces it second; the rows stop once both have
    want = generate(model, idx, 6, temperature=0, eos_token=eos)
    got = FastGenerator(model).generate(idx, 6, temperature=0, eos_token=eos)
    assert torch.equal(got[:, 20:], want[:, 20:])
