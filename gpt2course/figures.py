"""Figures the notebooks draw: the course roadmap and the workbench (part 0), the model, its
heads and the KV cache (parts 3-5), what a trained model's heads do (part 7), the GPT
timeline (part 9) and the RLHF pipeline (part 10).

Functions returning a new matplotlib ``Figure`` (made with pyplot, so a notebook's
``plt.show()`` displays it); the data they draw is public here, so the tests can check it
against the published dates and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from .widgets.attention import attention_weights

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
    ("10", "RLHF in\nminiature", "beyond"),
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
        "InstructGPT", 2022 + 0 / 12, "27 Jan 2022", "1.3B-175B", "", "API default (paper Mar 2022)",
        "OpenAI, Aligning Language Models to Follow Instructions (27 Jan 2022); Ouyang et al. "
        "2022 (March), Training language models to follow instructions with human feedback",
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
        ax.add_patch(_box(i - 0.42, -0.45, 0.84, 0.9, _STAGE_COLOURS[stage]))
        ax.text(i, 0.22, part, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(i, -0.12, title, ha="center", va="center", fontsize=7.5)
        if i:
            _arrow(ax, i - 0.58, 0, i - 0.42, 0)
    for j, (stage, colour) in enumerate(_STAGE_COLOURS.items()):
        x = 0.6 + 1.9 * j
        ax.add_patch(_box(x - 0.15, -0.95, 0.3, 0.22, colour))
        ax.text(x + 0.25, -0.84, stage, va="center", fontsize=8)
    return fig


def _box(x: float, y: float, w: float, h: float, colour: str) -> FancyBboxPatch:
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
    ax.spines[["left", "right", "top"]].set_visible(False)
    ax.set_title("From GPT-1 to GPT-4", fontsize=10)
    fig.tight_layout()
    return fig


def workbench_figure(
    piece: str = "CausalSelfAttention", made_in: str = "03", used_in: str = "04"
) -> Figure:
    """How a piece travels: its check keeps it on the workbench; a later notebook rebuilds and
    checks it again, and uses yours if it passes, else the reference's."""
    fig = plt.figure(figsize=(10, 2.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.1, 11.0)
    ax.set_ylim(-1.5, 1.3)
    ax.axis("off")
    steps = [
        (1.1, f"part {made_in}: you write\n{piece}", "#90caf9"),
        (3.7, "its check passes\n(✓ in the notebook)", "#a5d6a7"),
        (6.3, f"the workbench keeps\nits source:\n{piece}.py", "#ffcc80"),
        (8.9, f'part {used_in}: workbench.use(\n"{piece}")\nrebuilds it, checks again', "#ce93d8"),
    ]
    for k, (x, text, colour) in enumerate(steps):
        _flow(ax, 0.55, text, colour, width=2.2, x=x)
        if k:
            _arrow(ax, steps[k - 1][0] + 1.1, 0.55, x - 1.1, 0.55)
    for x, text, colour, why in [
        (7.9, "yours", "#a5d6a7", "it passes"),
        (10.0, "the reference's", "#eceff1", "missing, or fails now"),
    ]:
        _flow(ax, -0.85, text, colour, width=1.6, x=x)
        _arrow(ax, 8.9, 0.2, x, -0.55)
        ax.text(x, -1.3, why, ha="center", fontsize=7.5, color="#546e7a")
    ax.text(3.7, -0.45, "a wrong answer, or none yet: the notebook carries\n"
            "on with the reference, and nothing is kept", ha="center", fontsize=7.5,
            color="#546e7a")  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- the model's parts
# Parts 3-5 draw the model: data flow with shapes, the heads, the KV cache. Each takes the
# config whose shapes it writes on the picture, so the numbers are the notebook's own.


def _flow(ax, y: float, text: str, colour: str, width: float = 2.6, x: float = 0.0) -> None:
    ax.add_patch(_box(x - width / 2, y - 0.3, width, 0.6, colour))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, x0: float, y0: float, x1: float, y1: float, **kw) -> None:
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1, **kw))


def model_figure(config=None) -> Figure:
    """GPT-2 as data flow with shapes (left) and one pre-LN block with its residuals (right)."""
    from .config import GPTConfig

    c = config or GPTConfig.from_name("gpt2")
    C, V, L = c.n_embd, c.vocab_size, c.n_layer
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2))
    steps = [
        ("idx: token ids (B, T)", "#eceff1"),
        (f"wte[idx] + wpe[0..T-1]\n(B, T, {C})", "#90caf9"),
        (f"Block x {L}\n(B, T, {C}) -> (B, T, {C})", "#ffcc80"),
        (f"ln_f\n(B, T, {C})", "#a5d6a7"),
        (f"lm_head = wte (tied)\n{C} -> {V:,}", "#90caf9"),
        (f"logits (B, T, {V:,})", "#eceff1"),
    ]
    for i, (text, colour) in enumerate(steps):
        y = 5 - i
        _flow(left, y, text, colour)
        if i:
            _arrow(left, 0, y + 0.7, 0, y + 0.3)
    left.annotate(
        "", (1.55, 1.0), (1.55, 4.0), arrowprops=dict(arrowstyle="<->", ls="--", color="#1e88e5")
    )
    left.text(
        1.65, 3.0, "one matrix,\nread in and\nwritten out", fontsize=7, color="#1e88e5", va="center"
    )
    left.set_xlim(-1.6, 2.6)
    left.set_ylim(-0.5, 5.5)
    left.axis("off")
    left.set_title(f"The whole model ({c.n_layer} layers, {c.n_head} heads, width {C})", fontsize=9)

    # The block: the residual stream runs straight up; each sublayer reads a normalised copy.
    right.plot([0, 0], [0, 5.4], color="#455a64", lw=3)
    right.text(0.1, 5.45, f"residual stream x (B, T, {C})", fontsize=8)
    for y0, ln, sub, colour, note in [
        (0.6, "ln_1", "attn (causal,\nmulti-head)", "#ce93d8", "tokens exchange\ninformation"),
        (3.0, "ln_2", f"mlp\n{C} -> {4 * C} -> {C}", "#ffab91", "each token\non its own"),
    ]:
        _arrow(right, 0, y0, 1.0, y0 + 0.3)
        _flow(right, y0 + 0.5, ln, "#a5d6a7", width=0.8, x=1.4)
        _flow(right, y0 + 1.3, sub, colour, width=1.4, x=1.4)
        _arrow(right, 1.4, y0 + 0.8, 1.4, y0 + 1.0)
        _arrow(right, 1.4, y0 + 1.6, 0.12, y0 + 1.9)
        right.text(0, y0 + 1.95, "+", ha="center", va="center", fontsize=14, weight="bold",
                   bbox=dict(boxstyle="circle", fc="white", ec="#455a64"))  # fmt: skip
        right.text(2.3, y0 + 1.3, note, fontsize=7, va="center", color="#546e7a")
    right.set_xlim(-0.6, 3.4)
    right.set_ylim(-0.3, 5.8)
    right.axis("off")
    right.set_title("One block (pre-LN): x + attn(ln_1(x)), then x + mlp(ln_2(x))", fontsize=9)
    fig.tight_layout()
    return fig


def heads_figure(n_head: int = 4, T: int = 5, n_embd: int = 12) -> Figure:
    """c_attn's output split into q, k, v, and each split into heads: (B, T, C) -> (B, nh, T, hd)."""
    hd = n_embd // n_head
    colours = plt.get_cmap("tab10").colors
    cell = 0.25
    fig, ax = plt.subplots(figsize=(11, 2.6))

    def grid(x0: float, cols: int, colour_of, label: str) -> float:
        for r in range(T):
            for col in range(cols):
                ax.add_patch(Rectangle((x0 + col * cell, -r * cell), cell, cell,
                                       fc=colour_of(col), ec="white", lw=0.6))  # fmt: skip
        ax.text(x0 + cols * cell / 2, 0.45, label, ha="center", fontsize=8)
        return x0 + cols * cell

    def arrow(x0: float, text: str) -> float:
        ax.annotate("", (x0 + 1.1, -0.5), (x0 + 0.15, -0.5), arrowprops=dict(arrowstyle="->"))
        ax.text(x0 + 0.62, -0.3, text, ha="center", fontsize=7.5)
        return x0 + 1.25

    x = grid(0, n_embd, lambda col: "#b0bec5", f"x  (T={T}, C={n_embd})")
    x = arrow(x, "c_attn")
    for name in "qkv":
        x = grid(x, n_embd, lambda col: colours[col // hd], f"{name}  (T, C)") + 0.3
    x = arrow(x - 0.3, "split_heads(q)")
    for h in range(n_head):  # head h owns channels h*hd .. (h+1)*hd - 1
        x = grid(x, hd, lambda col, h=h: colours[h], f"head {h}") + 0.35
    ax.text(x / 2, -T * cell - 0.35,
            f"each head: its own slice of {hd} channels (head_dim = C / n_head = {n_embd} / "
            f"{n_head}); shape (n_head={n_head}, T, head_dim={hd}). k and v split the same way.",
            ha="center", fontsize=8)  # fmt: skip
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-T * cell - 0.6, 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("q, k and v from one matrix product, then the head split", fontsize=9)
    fig.tight_layout()
    return fig


def kv_cache_figure(prompt: int = 4, steps: int = 3) -> Figure:
    """The KV cache during generation: each step adds one key/value row and one query."""
    fig, axes = plt.subplots(1, steps, figsize=(10, 3.0), sharey=True)
    for s, ax in enumerate(axes):
        n = prompt + s  # keys and values held after this step
        for j in range(n):
            new = j == n - 1 and s > 0
            ax.add_patch(
                Rectangle((j, 1.2), 0.9, 0.9, fc="#ffcc80" if new else "#cfd8dc", ec="#455a64")
            )
            ax.text(j + 0.45, 1.65, f"k{j}\nv{j}", ha="center", va="center", fontsize=7)
        ax.add_patch(Rectangle((n - 1, 0), 0.9, 0.9, fc="#90caf9", ec="#455a64"))
        ax.text(n - 0.55, 0.45, f"q{n - 1}", ha="center", va="center", fontsize=8)
        for j in range(n):
            ax.plot([n - 0.55, j + 0.45], [0.9, 1.2], color="#1e88e5", lw=0.6, alpha=0.7)
        what = "prompt: every position computed once" if s == 0 else f"step {s}: one new token"
        ax.set_title(f"{what}\ncache holds {n} keys and values", fontsize=8)
        ax.set_xlim(-0.2, prompt + steps)
        ax.set_ylim(-0.2, 2.4)
        ax.axis("off")
    fig.suptitle("The newest query attends to every cached key; old queries are never needed again",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ what the heads do
# Part 7 looks for two kinds of heads that trained GPTs grow (Olsson et al. 2022, "In-context
# Learning and Induction Heads"): previous-token heads, and induction heads, which on a
# repeated text look at what followed the current token the first time, so it can be copied.


def head_scores(model, n: int = 50, seed: int = 0) -> tuple:
    """Each head's (previous-token, induction) score, two (n_layer, n_head) tensors in [0, 1].

    The model reads ``n`` distinct random tokens twice over. A head's previous-token score is
    its mean attention from each position to the one before it; its induction score, the mean
    attention from each token of the repeat to the token after that token's first occurrence.
    Random tokens leave nothing to guess from but the repeat itself.
    """
    vocab, context = model.config.vocab_size, model.config.context_length
    n = min(n, vocab, context // 2)
    if n < 2:
        raise ValueError(f"the model's context ({context}) is too short to repeat 2 tokens")
    g = torch.Generator().manual_seed(seed)
    first = torch.randperm(vocab, generator=g)[:n]
    w = attention_weights(model, torch.cat([first, first]))  # (L, nh, 2n, 2n)
    i = torch.arange(1, 2 * n)
    previous = w[:, :, i, i - 1].mean(-1)  # (L, nh)
    i = torch.arange(n, 2 * n)
    induction = w[:, :, i, i - n + 1].mean(-1)  # (L, nh)
    return previous, induction


def head_scores_figure(previous, induction, title: str = "") -> Figure:
    """The two scores of ``head_scores`` as heat maps, layer by head, each head's value on it."""
    previous, induction = (torch.as_tensor(t).float().numpy() for t in (previous, induction))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(previous) + 1.6))
    for ax, scores, name in (
        (axes[0], previous, "previous-token"),
        (axes[1], induction, "induction"),
    ):
        ax.imshow(scores, vmin=0, vmax=1, cmap="Blues")
        for (layer, head), v in np.ndenumerate(scores):
            ax.text(head, layer, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 else "black")  # fmt: skip
        ax.set_xlabel("head"), ax.set_ylabel("layer")
        ax.set_xticks(range(scores.shape[1])), ax.set_yticks(range(scores.shape[0]))
        ax.set_title(f"{name} score", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- part 10: RLHF
# (stage, what it trains on, where notebook 10 measures it)
RLHF_STEPS: list[tuple[str, str, str]] = [
    ("pretraining", "next token of\nTiny Shakespeare", "part 6; section 1"),
    ("instruction tuning", "chats: instruction\nand its answer", "sft_true, section 1"),
    ("reward model", "pairs of its samples\nranked by the rater", "rm_accuracy, section 2"),
    ("RL with a KL penalty", "its own samples,\nscored by the reward model", "rl_true, rl_kl, sections 3-4"),
]  # fmt: skip


def rlhf_pipeline_figure() -> Figure:
    """Pretraining -> instruction tuning -> reward model -> RL with a KL penalty; DPO as the
    shortcut from the ranked pairs to the tuned model, with no reward model and no sampling."""
    fig = plt.figure(figsize=(10, 2.8))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.7, len(RLHF_STEPS) - 0.3)
    ax.set_ylim(-1.5, 1.2)
    ax.axis("off")
    colours = ["#ffcc80", "#90caf9", "#a5d6a7", "#ce93d8"]
    for i, (stage, data, where) in enumerate(RLHF_STEPS):
        ax.add_patch(_box(i - 0.42, -0.45, 0.84, 0.9, colours[i]))
        ax.text(i, 0.22, stage, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(i, -0.12, data, ha="center", va="center", fontsize=7)
        ax.text(i, 0.62, f"measured: {where}", ha="center", va="center", fontsize=6.5,
                color="#546e7a")  # fmt: skip
        if i:
            _arrow(ax, i - 0.58, 0, i - 0.42, 0)
    # DPO: from the instruction-tuned model and the same ranked pairs, straight to a policy.
    ax.annotate("", (3, -0.5), (1, -0.5), arrowprops=dict(arrowstyle="->", lw=1.2, ls="--",
                connectionstyle="arc3,rad=0.35", color="#c62828"))  # fmt: skip
    ax.text(2, -1.2, "DPO: the same pairs, no reward model, no sampling (dpo_true, section 5)",
            ha="center", va="center", fontsize=8, color="#c62828")  # fmt: skip
    return fig
