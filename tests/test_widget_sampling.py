"""The sampling playground: its numbers against torch and transformers, its HTML, its wiring."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from gpt2course.assets import tiktoken_gpt2
from gpt2course.model import GPT, GPTConfig
from gpt2course.widgets.sampling import (
    NextTokenRow,
    SamplingPlayground,
    distribution_html,
    next_token_rows,
    sampling_playground,
)


@pytest.fixture(scope="module")
def enc():
    return tiktoken_gpt2()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, context_length=32))
    with torch.no_grad():
        m.wte.weight.mul_(30)  # a spread-out distribution, not a flat one
    return m.eval()


def test_rows_match_softmax_and_transformers_filters(model, enc):
    ids = enc.encode("Hello there")
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0, -1]
    rows = next_token_rows(model, enc, ids, temperature=0.7, top_k=5, top_n=12)
    p = torch.softmax(logits / 0.7, -1)
    assert [r.id for r in rows] == torch.topk(p, 12).indices.tolist()
    for r in rows:
        assert r.p == pytest.approx(float(p[r.id]), abs=1e-6)
        assert r.text == enc.decode([r.id])
    kept = TopKLogitsWarper(5)(None, (logits / 0.7)[None])[0].isfinite()
    assert [r.kept for r in rows] == [bool(kept[r.id]) for r in rows]
    assert sum(r.kept for r in rows) == 5
    rows = next_token_rows(model, enc, ids, temperature=1.0, top_p=0.3, top_n=20)
    kept = TopPLogitsWarper(0.3)(None, logits[None])[0].isfinite()
    assert [r.kept for r in rows] == [bool(kept[r.id]) for r in rows]


def test_greedy_keeps_only_the_argmax(model, enc):
    rows = next_token_rows(model, enc, enc.encode("a"), temperature=0.0, top_n=5)
    assert [r.kept for r in rows] == [True, False, False, False, False]


def test_html_greys_cut_tokens_and_escapes():
    rows = [NextTokenRow(1, " <b>", 0.5, 0.8), NextTokenRow(2, "\n", 0.2, 0.0)]
    out = distribution_html(rows, title="t & u")
    assert "␣&lt;b&gt;" in out and "<b> " not in out
    assert "t &amp; u" in out
    assert out.count("class='kept'") == 1 and out.count("class='cut'") == 1
    assert "#c8c8c8" in out and "0.800" in out
    assert "width:200px" in out and "width:80px" in out  # bars scale with p


def test_sliders_update_the_chart(model, enc):
    pg = SamplingPlayground(model, enc, prompt="Once upon a time", top_n=10)
    assert "10 of the top 10" in pg.status.value
    pg.top_k.value = 3
    assert pg.chart.value.count("class='kept'") == 3
    assert "3 of the top 10" in pg.status.value
    pg.top_k.value = 0
    pg.temperature.value = 0.0
    assert pg.chart.value.count("class='kept'") == 1


def test_sample_appends_a_token_reproducibly(model, enc):
    a = SamplingPlayground(model, enc, prompt="Once", seed=3)
    b = SamplingPlayground(model, enc, prompt="Once", seed=3)
    a.top_k.value = b.top_k.value = 4
    ids = [a.sample() for _ in range(3)]
    assert ids == [b.sample() for _ in range(3)]
    assert a.prompt.value == "Once" + enc.decode(ids)
    a.temperature.value = 0.0
    with torch.no_grad():
        want = int(model(torch.tensor([enc.encode(a.prompt.value)]))[0, -1].argmax())
    assert a.sample() == want


def test_bad_prompt_shows_an_error(model, enc):
    pg = SamplingPlayground(model, enc, prompt="")
    assert "prompt is empty" in pg.chart.value
    small = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, context_length=8, vocab_size=100))
    pg = SamplingPlayground(small, enc, prompt="zebra crossing")
    assert "does not know" in pg.chart.value


def test_long_prompt_is_cropped_to_the_context(model, enc):
    pg = SamplingPlayground(model, enc, prompt="word " * 100)
    assert "class='kept'" in pg.chart.value


def test_widget_builds(model, enc):
    w = sampling_playground(model, enc)
    assert len(w.children) == 7
