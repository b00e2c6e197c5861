"""The token viewer's HTML, checked without a browser, against tiktoken's own tokens."""

from __future__ import annotations

import html
import re

import pytest

from gpt2course import assets
from gpt2course.tokenizer import load_gpt2_tokenizer, train_bpe
from gpt2course.widgets.tokens import render_tokens, token_pieces, token_viewer


@pytest.fixture(scope="module")
def gpt2():
    return load_gpt2_tokenizer()


@pytest.fixture(scope="module")
def tik():
    return assets.tiktoken_gpt2()


def _spans(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<span title="([^"]*)"[^>]*>(.*?)</span>', page, flags=re.S)


def test_one_span_per_token_with_ids(gpt2, tik):
    text = "Hello world, hello  tokens!"
    page = render_tokens(gpt2, text)
    spans = _spans(page)
    ids = tik.encode(text)
    assert len(spans) == len(ids)
    assert [int(re.match(r"id (\d+)", html.unescape(t)).group(1)) for t, _ in spans] == ids
    assert "".join(html.unescape(body) for _, body in spans) == text
    assert f"{len(ids)} tokens" in page


def test_text_is_escaped(gpt2):
    page = render_tokens(gpt2, '<script>alert("x")</script> & "quotes"')
    assert "<script>" not in page
    assert "&lt;" in page and "script" in page
    for title, _ in _spans(page):
        assert '"' not in title and "<" not in title


def test_split_characters_show_their_bytes(gpt2, tik):
    text = "漢"
    pieces = token_pieces(gpt2, text)
    assert [i for i, _ in pieces] == tik.encode(text)
    assert len(pieces) > 1 and any("\\x" in p for _, p in pieces)


def test_side_by_side_and_special_tokens(gpt2, tik):
    small = train_bpe("the cat sat on the mat, a bat and a rat ate a fat gnat. " * 20, 280)
    text = "the cat<|endoftext|>"
    page = render_tokens({"ours (280)": small, "GPT-2": gpt2, "tiktoken": tik}, text)
    assert "ours (280)" in page and "GPT-2" in page
    assert page.count("id 50256") == 2  # GPT-2 and tiktoken show the special token as one token
    gpt2_cols = page.split("GPT-2")[1]
    assert f"{len(tik.encode(text, allowed_special='all'))} tokens" in gpt2_cols


def test_whitespace_made_visible(gpt2):
    page = render_tokens(gpt2, "a  b\nc", show_whitespace=True)
    assert "␣" in page and "↵" in page


def test_bad_input(gpt2):
    with pytest.raises(TypeError, match="must be a str"):
        render_tokens(gpt2, 123)
    with pytest.raises(ValueError, match="at least one tokenizer"):
        render_tokens({}, "x")


def test_widget_redraws_on_typing(gpt2):
    w = token_viewer({"GPT-2": gpt2}, text="one")
    box, out = w.children
    assert "1 token<" in out.value
    box.value = "one two three"
    assert "3 tokens" in out.value


def test_render_trained_colours_exactly_the_masked_tokens():
    from gpt2course.chat import chat_tokenizer, render_conversation
    from gpt2course.widgets.tokens import CONTEXT, TRAINED, render_trained

    tok = chat_tokenizer("bytes")
    messages = [{"role": "user", "content": "Hi <b>"}, {"role": "assistant", "content": "Yo"}]
    ids, mask = render_conversation(messages, tok)
    out = render_trained(tok, ids, mask)
    assert out.count(f"background:{TRAINED}") == 3  # "Y", "o", "<|end|>"
    assert out.count(f"background:{CONTEXT}") == len(ids) - 3
    assert "&lt;|assistant|&gt;" in out and "<b>" not in out
    with pytest.raises(ValueError, match="differ in length"):
        render_trained(tok, ids, mask[:-1])
