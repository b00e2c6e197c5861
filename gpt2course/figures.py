"""Figures the notebooks draw: the course roadmap (part 0) and the GPT timeline (part 9).

Functions returning a new matplotlib ``Figure`` (made with pyplot, so a notebook's
``plt.show()`` displays it); the data they draw is public here, so the tests can check it
against the published dates and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["ROADMAP", "TIMELINE", "Milestone", "roadmap_figure", "timeline_figure"]

# (part, short title, stage): the stages colour the roadmap.
ROADMAP: list[tuple[str, str, str]] = [
    ("00", "setup", "start"),
    ("01", "tokenizer\n(BPE)", "build"),
    ("02", "windows and\nembeddings", "build"),
    ("03", "attention", "build"),
    ("04", "transformer\nblock", "build"),
    ("05", "whole GPT-2,\ngeneration", "build"),
    ("06", "pretraining\n(Shakespeare)", "train"),
    ("07", "OpenAI's\nweights", "real GPT-2"),
    ("08", "fine-tuning,\nLoRA", "real GPT-2"),
    ("09", "towards\nChatGPT", "beyond"),
]

_STAGE_COLOURS = {
    "start": "#cfd8dc",
    "build": "#90caf9",
    "train": "#ffcc80",
    "real GPT-2": "#a5d6a7",
    "beyond": "#ce93d8",
}


@dataclass(frozen=True)
class Milestone:
    """One model on the timeline, with its source."""

    name: str
    year: float  # year + (month - 1) / 12
    date: str
    params: str  # as published; "undisclosed" when it was not
    context: str
    access: str
    source: str


TIMELINE: list[Milestone] = [
    Milestone(
        "GPT-1", 2018 + 5 / 12, "June 2018", "117M", "512", "weights released",
        "Radford et al. 2018, Improving Language Understanding by Generative Pre-Training",
    ),
    Milestone(
        "GPT-2", 2019 + 1 / 12, "Feb-Nov 2019", "124M-1.5B", "1,024", "weights, staged release",
        "Radford et al. 2019; OpenAI, Better Language Models and Their Implications (Feb 2019)",
    ),
    Milestone(
        "GPT-3", 2020 + 4 / 12, "May 2020", "175B", "2,048", "API only",
        "Brown et al. 2020, Language Models are Few-Shot Learners",
    ),
    Milestone(
        "InstructGPT", 2022 + 2 / 12, "Mar 2022", "1.3B-175B", "", "API only",
        "Ouyang et al. 2022, Training language models to follow instructions with human feedback",
    ),
    Milestone(
        "ChatGPT", 2022 + 10 / 12, "30 Nov 2022", "undisclosed", "",
        "chat app, on GPT-3.5",
        "OpenAI, Introducing ChatGPT (30 Nov 2022)",
    ),
    Milestone(
        "GPT-4", 2023 + 2 / 12, "Mar 2023", "undisclosed", "8,192 / 32,768", "API, chat app",
        "OpenAI 2023, GPT-4 Technical Report",
    ),
]  # fmt: skip


def roadmap_figure() -> Figure:
    """The course's ten parts as one row of boxes, coloured by stage."""
    fig = plt.figure(figsize=(10, 2.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.6, len(ROADMAP) - 0.4)
    ax.set_ylim(-1.1, 1.0)
    ax.axis("off")
    for i, (part, title, stage) in enumerate(ROADMAP):
        ax.add_patch(
            _box(i - 0.42, -0.45, 0.84, 0.9, _STAGE_COLOURS[stage]),
        )
        ax.text(i, 0.22, part, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(i, -0.12, title, ha="center", va="center", fontsize=7.5)
        if i:
            ax.annotate("", (i - 0.42, 0), (i - 0.58, 0), arrowprops=dict(arrowstyle="->", lw=1))
    for j, (stage, colour) in enumerate(_STAGE_COLOURS.items()):
        x = 0.6 + 1.9 * j
        ax.add_patch(_box(x - 0.15, -0.95, 0.3, 0.22, colour))
        ax.text(x + 0.25, -0.84, stage, va="center", fontsize=8)
    return fig


def _box(x: float, y: float, w: float, h: float, colour: str):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch(
        (x, y), w, h, boxstyle="round,pad=0.02", facecolor=colour, edgecolor="#455a64"
    )


def timeline_figure() -> Figure:
    """GPT-1 to GPT-4 on a time axis, each with its size, context and access."""
    fig = plt.figure(figsize=(10, 3.2))
    ax = fig.add_subplot()
    ax.axhline(0, color="#455a64", lw=1)
    for k, m in enumerate(TIMELINE):
        up = 1 if k % 2 == 0 else -1
        ax.plot([m.year, m.year], [0, 0.55 * up], color="#90a4ae", lw=1)
        ax.plot(m.year, 0, "o", color="C3" if m.name == "GPT-2" else "C0")
        label = f"{m.name}\n{m.date}\n{m.params} params"
        if m.context:
            label += f"\ncontext {m.context}"
        label += f"\n{m.access}"
        ax.text(
            m.year, 0.6 * up, label, ha="center", va="bottom" if up > 0 else "top", fontsize=7.5,
            weight="bold" if m.name == "GPT-2" else "normal",
        )  # fmt: skip
    ax.set_xlim(2017.8, 2023.8)
    ax.set_ylim(-2.0, 2.0)
    ax.set_yticks([])
    ax.set_xticks(range(2018, 2024))
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title("From GPT-1 to GPT-4", fontsize=10)
    fig.tight_layout()
    return fig
