"""The token viewer: type text, see its tokens as coloured spans, one tokenizer or several
side by side. Hover over a token to read its id and bytes. ``render_trained`` colours a
rendered conversation by what the loss learns."""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets

from ..tokenizer.named import Tokenizer
from .attention import token_strings
from .static import Snapshot

# Light colours that keep black text readable; neighbours always differ.
PALETTE = ("#cde8ff", "#ffe0b3", "#d4f5d0", "#f9d0e6", "#e6dcff", "#fff3a8", "#c9f0ef", "#f6d5c8")
DEFAULT_TEXT = (
    "Hello world! Tokenization is   surprisingly 12345 fiddly: ça coûte plus de tokens 🙂"
)


def _as_dict(tokenizers: Mapping[str, Tokenizer] | Tokenizer) -> dict[str, Tokenizer]:
    if isinstance(tokenizers, Mapping):
        if not tokenizers:
            raise ValueError("pass at least one tokenizer, e.g. {'GPT-2': load_gpt2_tokenizer()}")
        return dict(tokenizers)
    return {str(getattr(tokenizers, "name", None) or type(tokenizers).__name__): tokenizers}


def encode_all(tokenizer: Tokenizer, text: str) -> list[int]:
    """``text``'s ids with special tokens as tokens: a widget never refuses the text it is given."""
    try:
        return list(tokenizer.encode(text, allowed_special="all"))
    except TypeError:  # a tokenizer without tiktoken's allowed_special
        return list(tokenizer.encode(text))


def token_pieces(tokenizer: Tokenizer, text: str) -> list[tuple[int, str]]:
    """``(id, text)`` per token; bytes that are only part of a character show as ``\\xNN``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = encode_all(tokenizer, text)
    # A token may hold half of a multi-byte character (common outside English): show
    # those bytes rather than a misleading whole character.
    return list(zip(ids, token_strings(tokenizer, ids, "backslashreplace"), strict=True))


def _column(
    name: str,
    pieces: list[tuple[int, str]],
    n_chars: int | None,
    show_whitespace: bool,
    colours: Sequence[str] | None = None,
) -> str:
    spans = []
    for k, (i, piece) in enumerate(pieces):
        title = html.escape(f"id {i}: {piece!r}", quote=True)
        colour = colours[k] if colours else PALETTE[k % len(PALETTE)]
        shown = piece.replace(" ", "␣").replace("\t", "→") if show_whitespace else piece
        # Keep line breaks (the text's shape) but make them visible as tokens.
        body = html.escape(shown.replace("\n", "↵\n")) or "∅"
        spans.append(
            f'<span title="{title}" style="background:{colour};border-radius:3px;'
            f'padding:1px 0;margin-right:1px">{body}</span>'
        )
    n = len(pieces)
    ratio = f", {n_chars / n:.1f} characters per token" if n and n_chars is not None else ""
    return (
        '<div style="flex:1 1 260px;min-width:220px">'
        f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(name)}: '
        f"{n} token{'s' if n != 1 else ''}"
        f'<span style="font-weight:normal;color:#666">{ratio}</span></div>'
        '<div style="font-family:monospace;white-space:pre-wrap;word-break:break-word;'
        f'line-height:1.9">{"".join(spans)}</div></div>'
    )


def render_tokens(
    tokenizers: Mapping[str, Tokenizer] | Tokenizer, text: str, *, show_whitespace: bool = False
) -> str:
    """HTML showing ``text`` as coloured token spans for each tokenizer, side by side."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    columns = []
    for name, tok in _as_dict(tokenizers).items():
        try:
            columns.append(_column(name, token_pieces(tok, text), len(text), show_whitespace))
        except Exception as e:  # one tokenizer failing should not blank the others
            msg = html.escape(f"{name}: {type(e).__name__}: {e}")
            columns.append(f'<div style="flex:1 1 260px;color:#b00">{msg}</div>')
    return (
        '<div class="gpt2c-tokens" style="display:flex;flex-wrap:wrap;gap:18px;'
        f'align-items:flex-start">{"".join(columns)}</div>'
    )


TRAINED, CONTEXT = "#a8e6a0", "#e6e6e6"


def render_trained(tokenizer: Tokenizer, ids: Sequence[int], mask: Sequence[int]) -> str:
    """HTML of a rendered conversation's tokens: those the loss learns (mask 1) in green,
    the context in grey. Hover over a token to read its id."""
    if len(ids) != len(mask):
        raise ValueError(f"ids and mask differ in length ({len(ids)} and {len(mask)})")
    pieces = list(zip(ids, token_strings(tokenizer, ids, "backslashreplace"), strict=True))
    colours = [TRAINED if m else CONTEXT for m in mask]
    name = f"the conversation, learned tokens in green ({sum(map(bool, mask))})"
    return f'<div class="gpt2c-tokens">{_column(name, pieces, None, False, colours)}</div>'


def token_viewer(
    tokenizers: Mapping[str, Tokenizer] | Tokenizer,
    text: str = DEFAULT_TEXT,
    *,
    show_whitespace: bool = False,
) -> Snapshot:
    """A text box and its tokens, redrawn as you type; pass a dict to compare tokenizers."""
    tokenizers = _as_dict(tokenizers)
    box = widgets.Textarea(
        value=text,
        placeholder="Type or paste text here",
        layout=widgets.Layout(width="100%", height="80px"),
    )
    out = widgets.HTML()
    draw = functools.partial(render_tokens, tokenizers, show_whitespace=show_whitespace)
    widgets.dlink((box, "value"), (out, "value"), draw)  # draws now, then on every change
    return Snapshot([box, out])
