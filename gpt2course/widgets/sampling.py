"""The sampling playground: see what temperature, top-k and top-p do to the next token.

A prompt box, three sliders and a bar chart of the next-token distribution: blue bars are
the tokens sampling may pick, grey ones were cut by top-k/top-p. "Sample one token" draws
from the blue bars and appends the token to the prompt.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import torch

from ..assets import tiktoken_gpt2
from ..generation import check_sampling_args, next_token_probs
from .attention import display_token, token_strings
from .static import Snapshot
from .tokens import encode_all

_KEPT = "#1f77b4"
_CUT = "#c8c8c8"


@dataclass(frozen=True)
class NextTokenRow:
    """One candidate next token: its id and text, its probability after the temperature,
    and the probability sampling gives it after top-k/top-p (0 when cut)."""

    id: int
    text: str
    p: float
    q: float

    @property
    def kept(self) -> bool:
        """Whether sampling can pick this token."""
        return self.q > 0


@torch.inference_mode()
def next_token_rows(
    model: torch.nn.Module,
    tokenizer: Any,
    ids: Sequence[int],
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    top_n: int = 15,
    logits: torch.Tensor | None = None,
) -> list[NextTokenRow]:
    """The ``top_n`` most likely next tokens after ``ids`` (pass ``logits`` to skip the model)."""
    check_sampling_args(temperature, top_k, top_p)
    if logits is None:
        logits = last_logits(model, ids)
    logits = logits.float().cpu()
    p = next_token_probs(logits, temperature)  # temperature 0: all on the argmax
    q = next_token_probs(logits, temperature, top_k, top_p)
    order = torch.argsort(p, descending=True, stable=True)[:top_n].tolist()
    texts = token_strings(tokenizer, order)
    return [NextTokenRow(i, t, float(p[i]), float(q[i])) for i, t in zip(order, texts, strict=True)]


@torch.inference_mode()
def last_logits(model: torch.nn.Module, ids: Sequence[int]) -> torch.Tensor:
    """The model's logits (vocab,) for the token after ``ids`` (cropped to its context)."""
    if len(ids) == 0:
        raise ValueError("the prompt is empty: type something, or start from <|endoftext|>")
    context_length = model.config.context_length
    device = next(model.parameters()).device
    idx = torch.tensor([list(ids)[-context_length:]], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        return model(idx)[0, -1]  # (vocab,)
    finally:
        model.train(was_training)


def distribution_html(rows: Sequence[NextTokenRow], title: str = "") -> str:
    """A horizontal bar chart of the rows: bar length = p; kept tokens blue, cut ones grey."""
    if not rows:
        return "<div>no tokens to show</div>"
    top = max(r.p for r in rows) or 1.0
    lines = [
        "<div class='gpt2c-sampling' style='font-family:monospace;font-size:12px'>",
        f"<div style='margin-bottom:4px'><b>{html.escape(title)}</b></div>" if title else "",
        "<table style='border-collapse:collapse'>",
        "<tr><th style='text-align:left;padding:0 6px'>token</th><th></th>"
        "<th style='text-align:right;padding:0 6px'>p</th>"
        "<th style='text-align:right;padding:0 6px'>sampled with</th></tr>",
    ]
    for r in rows:
        colour = _KEPT if r.kept else _CUT
        width = max(1, round(200 * r.p / top))
        state = "kept" if r.kept else "cut"
        q = f"{r.q:.3f}" if r.kept else "cut"
        lines.append(
            f"<tr class='{state}' title='id {r.id}'>"
            f"<td style='padding:0 6px;color:{'#000' if r.kept else '#999'}'>"
            f"{html.escape(display_token(r.text))}</td>"
            f"<td><div style='width:{width}px;height:12px;background:{colour}'></div></td>"
            f"<td style='text-align:right;padding:0 6px'>{r.p:.3f}</td>"
            f"<td style='text-align:right;padding:0 6px'>{q}</td></tr>"
        )
    lines.append("</table></div>")
    return "".join(lines)


class SamplingPlayground:
    """Prompt box, temperature/top-k/top-p sliders, the next-token bar chart, a sample button."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        prompt: str = "The meaning of life is",
        top_n: int = 15,
        seed: int = 0,
    ):
        if tokenizer is None:
            tokenizer = tiktoken_gpt2()
        self.model, self.tokenizer, self.top_n = model, tokenizer, top_n
        self.generator = torch.Generator().manual_seed(seed)
        self._logits: tuple[str, torch.Tensor] | None = None  # (prompt, its logits)
        style = {"description_width": "initial"}

        def slider(cls: type, description: str, **kw: Any) -> widgets.Widget:
            return cls(
                description=description, style=style, layout=widgets.Layout(width="420px"), **kw
            )

        self.prompt = widgets.Textarea(
            value=prompt,
            description="prompt",
            continuous_update=False,
            layout=widgets.Layout(width="520px"),
            style=style,
        )
        self.temperature = slider(
            widgets.FloatSlider, "temperature", value=1.0, min=0.0, max=2.0, step=0.05
        )
        self.top_k = slider(widgets.IntSlider, "top-k (0 = off)", value=0, min=0, max=100)
        self.top_p = slider(
            widgets.FloatSlider, "top-p (1 = off)", value=1.0, min=0.05, max=1.0, step=0.05
        )
        self.button = widgets.Button(description="Sample one token", button_style="primary")
        self.chart = widgets.HTML()
        self.status = widgets.HTML()
        for w in (self.prompt, self.temperature, self.top_k, self.top_p):
            w.observe(lambda _change: self.render(), names="value")
        self.button.on_click(lambda _b: self.sample())
        controls = [self.prompt, self.temperature, self.top_k, self.top_p, self.button]
        self.widget = Snapshot([*controls, self.status, self.chart])
        self.render()

    def settings(self) -> tuple[float, int | None, float | None]:
        """The sliders as ``(temperature, top_k, top_p)``, with None for "off"."""
        top_k = self.top_k.value or None
        top_p = self.top_p.value if self.top_p.value < 1.0 else None
        return float(self.temperature.value), top_k, top_p

    def _ids(self) -> list[int]:
        ids = encode_all(self.tokenizer, self.prompt.value)
        vocab = self.model.config.vocab_size
        if any(i >= vocab for i in ids):
            raise ValueError(
                f"the tokenizer gives ids the model does not know (its vocabulary has {vocab} tokens)"
            )
        return ids

    def _last_logits(self) -> torch.Tensor:
        if self._logits is None or self._logits[0] != self.prompt.value:
            # The model runs only when the prompt changed, not when a slider moved.
            self._logits = (self.prompt.value, last_logits(self.model, self._ids()))
        return self._logits[1]

    def rows(self) -> list[NextTokenRow]:
        """The chart's rows for the current prompt and sliders."""
        t, k, p = self.settings()
        return next_token_rows(
            self.model, self.tokenizer, [], t, k, p, self.top_n, self._last_logits()
        )

    def render(self) -> None:
        """Redraw the chart (the model runs only when the prompt changed)."""
        try:
            rows = self.rows()
        except ValueError as e:
            self.chart.value = f"<div style='color:#b00'>{html.escape(str(e))}</div>"
            return
        kept = sum(r.kept for r in rows)
        t, k, p = self.settings()
        title = f"next token after the prompt: temperature {t:g}, top-k {k or 'off'}, top-p {p or 'off'}"
        self.chart.value = distribution_html(rows, title)
        self.status.value = f"<small>{kept} of the top {len(rows)} tokens can be sampled</small>"

    def sample(self) -> int:
        """Draw one token with the current settings, append it to the prompt, return its id."""
        t, k, p = self.settings()
        probs = next_token_probs(self._last_logits().float().cpu()[None], t, k, p)  # (1, vocab)
        next_id = int(torch.multinomial(probs, 1, generator=self.generator))
        self.prompt.value = self.prompt.value + self.tokenizer.decode([next_id])  # re-renders
        return next_id


def sampling_playground(
    model: torch.nn.Module,
    tokenizer: Any = None,
    prompt: str = "The meaning of life is",
    top_n: int = 15,
    seed: int = 0,
) -> Snapshot:
    """The playground's widget, ready to display (the last line of a cell)."""
    return SamplingPlayground(model, tokenizer, prompt, top_n, seed).widget
