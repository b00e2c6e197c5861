"""The attention viewer: pure rendering, and the widget wiring."""

import re
from html.parser import HTMLParser

import pytest
import torch

from gpt2course import assets
from gpt2course.attention import causal_mask
from gpt2course.model import GPT, GPTConfig
from gpt2course.widgets.attention import (
    AttentionViewer,
    attention_viewer,
    attention_weights,
    by_token_html,
    display_token,
    heatmap_html,
    token_strings,
)


class Cells(HTMLParser):
    """Collects the title of every <td> and <span>, and the header texts, in order."""

    def __init__(self):
        super().__init__()
        self.titles, self.headers, self._in_th = [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("td", "span") and "title" in a:
            self.titles.append(a["title"])
        self._in_th = tag == "th"

    def handle_data(self, data):
        if self._in_th:
            self.headers.append(data)

    def handle_endtag(self, tag):
        self._in_th = False


def parse(h):
    p = Cells()
    p.feed(h)
    return p


def causal_weights(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(T, T, generator=g).masked_fill(~causal_mask(T), float("-inf"))
    return scores.softmax(-1)


def test_heatmap_has_a_cell_per_pair_with_readable_weights():
    tokens = ["The", " cat", " <sat>", "\n"]
    w = causal_weights(4)
    p = parse(heatmap_html(w, tokens, caption="layer 0"))
    assert len(p.titles) == 16
    # row i, column j reads "i:query → j:key  weight w"
    i, j = 2, 1
    title = p.titles[i * 4 + j]
    assert title.startswith("2:␣<sat> → 1:␣cat")
    assert float(title.split("weight")[1]) == pytest.approx(w[i, j].item(), abs=5e-4)
    # tokens on both axes, escaped (no raw <sat> tag), whitespace made visible
    assert p.headers.count("␣<sat>") == 2 and p.headers.count("↵") == 2
    assert "<sat>" not in heatmap_html(w, tokens).replace("&lt;sat&gt;", "")


def test_heatmap_hatches_the_future():
    h = heatmap_html(causal_weights(3), ["a", "b", "c"])
    assert h.count("repeating-linear-gradient") == 3  # the 3 cells above the diagonal


def test_by_token_view_highlights_one_row():
    tokens = ["a", "b", "c", "d"]
    w = causal_weights(4, seed=1)
    h = by_token_html(w, tokens, query=2)
    p = parse(h)
    assert len(p.titles) == 4
    for j, title in enumerate(p.titles):
        assert title.startswith(f"2:c → {j}:")
        assert float(title.split("weight")[1]) == pytest.approx(w[2, j].item(), abs=5e-4)
    assert h.count("outline") == 1
    strongest = int(w[2].argmax())
    alphas = [float(a) for a in re.findall(r"rgba\([^)]*,\s*([0-9.]+)\)", h)]
    assert alphas[strongest] == pytest.approx(1.0)
    with pytest.raises(IndexError, match="out of range"):
        by_token_html(w, tokens, query=4)


def test_rendering_rejects_mismatched_input():
    with pytest.raises(ValueError, match="3 weight rows but 2 tokens"):
        heatmap_html(causal_weights(3), ["a", "b"])
    with pytest.raises(ValueError, match=r"one \(T, T\) matrix"):
        heatmap_html(torch.rand(2, 3, 3), ["a", "b", "c"])


def test_display_token_and_token_strings():
    enc = assets.tiktoken_gpt2()
    ids = enc.encode("Hello world\n😀")
    strings = token_strings(enc, ids)
    assert "".join(strings[:3]) == "Hello world\n"  # the emoji spans tokens: shown as �
    assert len(strings) == len(ids)
    assert display_token(" a\tb\n") == "␣a→b↵" and display_token("") == "∅"


@pytest.fixture
def tiny_gpt():
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=50257, context_length=32, n_embd=16, n_layer=2, n_head=2)
    ).train()


def test_attention_weights_come_from_the_model(tiny_gpt):
    idx = torch.tensor([464, 3797, 3332, 319])
    w = attention_weights(tiny_gpt, idx)
    assert w.shape == (2, 2, 4, 4)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 4))
    assert (w[..., ~causal_mask(4)] == 0).all()
    assert tiny_gpt.training  # the mode is restored


def test_viewer_widget_updates_on_every_control(tiny_gpt):
    viewer = attention_viewer(tiny_gpt, assets.tiktoken_gpt2(), "The cat sat on the mat.")
    T = len(viewer.tokens)
    first = viewer.view.value
    assert "layer 0, head 0" in first and len(parse(first).titles) == T * T
    assert "GPT, 2 layers x 2 heads" in viewer.children[0].value
    viewer.layer.value = 1
    viewer.mean.value = True
    assert viewer.head.disabled
    assert "layer 1, mean of heads" in viewer.view.value
    expected = viewer.weights[1].mean(0)
    assert viewer.view.value == heatmap_html(
        expected, viewer.tokens, caption="layer 1, mean of heads"
    )
    viewer.mode.value = "by token"
    viewer.token.value = 3
    p = parse(viewer.view.value)
    assert len(p.titles) == T and all(t.startswith("3:") for t in p.titles)
    assert viewer.token.layout.display is None
    viewer.mode.value = "heatmap"
    assert viewer.token.layout.display == "none"


def test_viewer_from_weights_checks_shapes():
    w = torch.stack([torch.stack([causal_weights(3)] * 2)])  # (1, 2, 3, 3)
    assert AttentionViewer(w, ["a", "b", "c"]).head.max == 1
    with pytest.raises(ValueError, match="n_layer, n_head, T, T"):
        AttentionViewer(w[0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="tokens"):
        AttentionViewer(w, ["a", "b"])


def test_viewer_without_arguments_says_the_model_is_untrained():
    viewer = attention_viewer()
    assert "untrained" in viewer.children[0].value
    assert viewer.tokens[:3] == ["The", " cat", " sat"]
    before = viewer.view.value
    viewer.head.value = 2
    assert viewer.view.value != before and "head 2" in viewer.view.value


def test_viewer_rejects_too_long_text(tiny_gpt):
    with pytest.raises(ValueError, match="context is 32"):
        attention_viewer(tiny_gpt, assets.tiktoken_gpt2(), "word " * 40)
