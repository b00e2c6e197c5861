"""The attention viewer: which tokens each token attends to, per layer and head; hover over
a cell to read its weight."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import torch

from ..assets import tiktoken_gpt2
from ..attention import causal_mask, scaled_dot_product_attention, split_heads
from ..model import GPT, GPTConfig
from .static import Snapshot

# One hue for weights; cells a query may not see (the future) are hatched grey.
_RGB = "31, 119, 180"
_FUTURE = "background:repeating-linear-gradient(45deg,#f3f3f3 0 3px,#e2e2e2 3px 6px)"
# Inline styles only: notebook front ends may strip <style> blocks from HTML output.
_CELL = "width:15px;height:15px;padding:0;border:1px solid #fff;"
_TH = "font-weight:normal;padding:1px 3px;"


def display_token(s: str) -> str:
    """A token made readable: spaces as ␣, newlines as ↵, tabs as →."""
    return s.replace(" ", "␣").replace("\n", "↵").replace("\t", "→") or "∅"


def token_strings(tokenizer: Any, ids: Sequence[int], errors: str = "replace") -> list[str]:
    """Each id's text on its own (its bytes decoded with ``errors``, else ``decode([id])``)."""
    ids = [int(i) for i in ids]
    if hasattr(tokenizer, "decode_single_token_bytes"):
        # A single token may hold half of a multi-byte character: show � rather than fail.
        return [tokenizer.decode_single_token_bytes(i).decode("utf-8", errors) for i in ids]
    return [tokenizer.decode([i]) for i in ids]


def attention_weights(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """(n_layer, n_head, T, T) attention weights of a GPT for one sequence ``idx`` (T,).

    Each layer's input is caught on its way into ``h.N.attn``; the weights are recomputed
    from that module's own ``c_attn`` with the step-by-step attention of part 3. Any GPT with
    GPT-2's module names works, yours included.
    """
    if idx.dim() == 1:
        idx = idx[None]
    if idx.dim() != 2 or idx.size(0) != 1:
        raise ValueError(
            f"pass one sequence of token ids, shape (T,) or (1, T); got {tuple(idx.shape)}"
        )
    inputs: list[torch.Tensor] = []
    hooks = [
        b.attn.register_forward_pre_hook(lambda m, args: inputs.append(args[0])) for b in model.h
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx)
            weights = [_weights(b.attn, x, model) for b, x in zip(model.h, inputs, strict=True)]
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return torch.stack([w[0] for w in weights]).float().cpu()  # (L, nh, T, T)


def _weights(attn: torch.nn.Module, x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) of one attention layer for its input ``x`` (B, T, C)."""
    n_head = getattr(attn, "n_head", None) or model.config.n_head
    C, T = x.size(-1), x.size(1)
    q, k, _ = attn.c_attn(x).split(C, dim=2)
    q, k = split_heads(q, n_head), split_heads(k, n_head)  # (B, nh, T, hd)
    _, w = scaled_dot_product_attention(q, k, k, mask=causal_mask(T, x.device), return_weights=True)
    return w  # (B, nh, T, T)


def _check(weights: torch.Tensor, tokens: Sequence[str]) -> None:
    if weights.dim() != 2 or weights.size(0) != weights.size(1):
        raise ValueError(f"weights must be one (T, T) matrix, got shape {tuple(weights.shape)}")
    if weights.size(0) != len(tokens):
        raise ValueError(f"{weights.size(0)} weight rows but {len(tokens)} tokens")


def _cell_title(tokens: Sequence[str], i: int, j: int, w: float) -> str:
    return html.escape(
        f"{i}:{display_token(tokens[i])} → {j}:{display_token(tokens[j])}  weight {w:.3f}",
        quote=True,
    )


def heatmap_html(weights: torch.Tensor, tokens: Sequence[str], caption: str = "") -> str:
    """An HTML table: one row per query token, one column per key token, shaded by weight.

    Hover over a cell to read "query → key  weight". Keys a query cannot attend to (weight
    exactly 0, such as the future under a causal mask) are hatched.
    """
    _check(weights, tokens)
    w = weights.detach().float().cpu().tolist()
    T = len(tokens)
    head = "".join(
        f'<th style="{_TH}writing-mode:vertical-rl;transform:rotate(180deg)">'
        f"{html.escape(display_token(t))}</th>"
        for t in tokens
    )
    rows = []
    for i in range(T):
        tds = []
        for j in range(T):
            x = w[i][j]
            style = _FUTURE if x == 0.0 else f"background:rgba({_RGB},{x:.3f})"
            tds.append(f'<td title="{_cell_title(tokens, i, j, x)}" style="{_CELL}{style}"></td>')
        label = html.escape(display_token(tokens[i]))
        rows.append(f'<tr><th style="{_TH}text-align:right">{label}</th>{"".join(tds)}</tr>')
    cap = (
        f'<caption style="caption-side:top;text-align:left">{html.escape(caption)}</caption>'
        if caption
        else ""
    )
    return (
        '<div style="overflow:auto">'
        '<table style="border-collapse:collapse;font:11px monospace">'
        f"{cap}<tr><th></th>{head}</tr>{''.join(rows)}</table>"
        '<div style="font:11px sans-serif;color:#555">rows: the token that looks (query) · '
        "columns: the tokens it looks at (keys) · darker = more weight · hover to read</div></div>"
    )


def by_token_html(
    weights: torch.Tensor, tokens: Sequence[str], query: int, caption: str = ""
) -> str:
    """The text with each token shaded by how much token ``query`` attends to it."""
    _check(weights, tokens)
    T = len(tokens)
    if not -T <= query < T:
        raise IndexError(f"query {query} out of range for {T} tokens")
    query %= T
    row = weights[query].detach().float().cpu()
    # Shade relative to the row's largest weight, so a spread-out pattern is still visible;
    # the exact weight is in each token's tooltip.
    top = float(row.max()) or 1.0
    spans = []
    for j, tok in enumerate(tokens):
        x = float(row[j])
        style = f"background: rgba({_RGB}, {x / top:.3f});"
        if j == query:
            style += "outline:2px solid #d62728;"
        elif x == 0.0:
            style = "color:#aaa;"
        text = html.escape(display_token(tok))
        spans.append(
            f'<span title="{_cell_title(tokens, query, j, x)}" style="{style}padding:1px 0">{text}</span>'
        )
    cap = html.escape(caption or f"what token {query} ({display_token(tokens[query])}) attends to")
    return (
        f'<div style="font:13px monospace;line-height:1.9"><div style="font:12px sans-serif;'
        f'color:#555">{cap} · darker = more weight · hover to read</div>{"".join(spans)}</div>'
    )


class AttentionViewer(Snapshot):
    """Pick a layer, a head (or their mean) and a view; see the attention pattern.

    ``weights`` is (n_layer, n_head, T, T), ``tokens`` the T token strings, ``title`` says
    which model the weights come from.
    """

    def __init__(self, weights: torch.Tensor, tokens: Sequence[str], title: str = ""):
        if weights.dim() != 4:
            raise ValueError(
                f"weights must be (n_layer, n_head, T, T), got shape {tuple(weights.shape)}"
            )
        _check(weights[0, 0], tokens)
        self.weights, self.tokens = weights.detach().float().cpu(), list(tokens)
        L, H, T = weights.shape[:3]
        # Sliders, not dropdowns: arrow keys sweep through the layers, heads and tokens.
        self.layer = widgets.IntSlider(value=0, min=0, max=L - 1, description="layer")
        self.head = widgets.IntSlider(value=0, min=0, max=H - 1, description="head")
        self.mean = widgets.Checkbox(value=False, description="mean of the heads", indent=False)
        self.mode = widgets.ToggleButtons(options=["heatmap", "by token"], value="heatmap")
        self.token = widgets.IntSlider(value=T - 1, min=0, max=T - 1, description="token")
        self.view = widgets.HTML()
        for control in (self.layer, self.head, self.mean, self.mode, self.token):
            control.observe(self._update, names="value")
        header = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = [
            widgets.HBox([self.layer, self.head, self.mean]),
            widgets.HBox([self.mode, self.token]),
        ]
        super().__init__([*header, *rows, self.view])
        self._update()

    def render(self) -> str:
        """The HTML for the current choices."""
        head = -1 if self.mean.value else self.head.value
        w = self.weights[self.layer.value]  # (nh, T, T)
        m = w.mean(0) if head < 0 else w[head]  # (T, T)
        where = f"layer {self.layer.value}, " + ("mean of heads" if head < 0 else f"head {head}")
        if self.mode.value == "heatmap":
            return heatmap_html(m, self.tokens, caption=where)
        q = self.token.value
        return by_token_html(
            m,
            self.tokens,
            q,
            caption=f"{where}: what token {q} ({display_token(self.tokens[q])}) attends to",
        )

    def _update(self, change: Any = None) -> None:
        self.head.disabled = self.mean.value
        self.token.layout.display = "none" if self.mode.value == "heatmap" else None
        self.view.value = self.render()


DEMO_TEXT = "The cat sat on the mat because it was tired."


def attention_viewer(
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    text: str = DEMO_TEXT,
    max_tokens: int = 48,
    title: str | None = None,
) -> AttentionViewer:
    """An ``AttentionViewer`` for ``text`` (its first ``max_tokens`` tokens) run through ``model``.

    ``tokenizer`` defaults to GPT-2's. Without a model it shows a small *untrained* GPT, and
    says so: random weights spread their attention evenly, so only the shapes are meaningful.
    """
    if tokenizer is None:
        tokenizer = tiktoken_gpt2()
    if model is None:
        torch.manual_seed(0)
        model = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=64, context_length=64)).eval()
        title = title or "an untrained GPT (random weights), 2 layers x 4 heads"
    ids = tokenizer.encode(text)[:max_tokens]
    if not ids:
        raise ValueError("the text has no tokens; pass some text to look at")
    context_length = getattr(getattr(model, "config", None), "context_length", None)
    if context_length is not None and len(ids) > context_length:
        raise ValueError(
            f"{len(ids)} tokens but the model's context is {context_length}; pass a shorter text "
            f"or max_tokens={context_length}"
        )
    device = next(model.parameters()).device
    weights = attention_weights(model, torch.tensor(ids, device=device))
    if title is None:
        L, H = weights.shape[:2]
        title = f"{type(model).__name__}, {L} layers x {H} heads"
    return AttentionViewer(weights, token_strings(tokenizer, ids), title=title)
