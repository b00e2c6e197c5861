"""The roadmap and timeline figures: they render, and their data agrees with the sources."""

import io

import matplotlib.pyplot as plt

from gpt2course import figures
from gpt2course.model import GPTConfig
from gpt2course.workshop import course


def test_roadmap_has_one_box_per_notebook_in_order():
    assert [p for p, _, _ in figures.ROADMAP] == [nb.slug[:2] for nb in course.NOTEBOOKS]


def test_timeline_is_chronological_and_matches_published_facts():
    years = [m.year for m in figures.TIMELINE]
    assert years == sorted(years)
    by_name = {m.name: m for m in figures.TIMELINE}
    # GPT-2's context is its position table (Radford et al. 2019: 1,024 tokens).
    assert by_name["GPT-2"].context == f"{GPTConfig.from_name('gpt2').context_length:,}"
    assert by_name["GPT-3"].params == "175B"  # Brown et al. 2020
    assert by_name["GPT-4"].params == "undisclosed"  # the GPT-4 report withheld it
    assert "GPT-3.5" in by_name["ChatGPT"].access  # OpenAI's ChatGPT post
    # OpenAI's "Aligning language models to follow instructions": the API's default, 27 Jan
    # 2022; the paper (Ouyang et al., arXiv 2203.02155) followed in March.
    assert (
        by_name["InstructGPT"].date == "27 Jan 2022" and "Mar 2022" in by_name["InstructGPT"].access
    )
    assert all(m.source for m in figures.TIMELINE)


def test_figures_render():
    for fig in (
        figures.roadmap_figure(),
        figures.timeline_figure(),
        figures.rlhf_pipeline_figure(),
    ):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 1000
        plt.close(fig)


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " ".join(
        ax.get_title() for ax in fig.axes
    )


def test_model_figure_writes_the_configs_own_shapes():
    """The shapes on the picture are the ones GPT-2 small has (Radford et al. 2019, table 2)."""
    text = _texts(figures.model_figure(GPTConfig.from_name("gpt2")))
    assert "(B, T, 768)" in text and "Block x 12" in text and "50,257" in text
    assert "768 -> 3072 -> 768" in text, "the MLP expands 4x"
    small = _texts(figures.model_figure(GPTConfig(n_layer=2, n_embd=64, n_head=4)))
    assert "Block x 2" in small and "(B, T, 64)" in small
    plt.close("all")


def test_heads_figure_gives_each_head_its_slice():
    fig = figures.heads_figure(n_head=3, T=4, n_embd=9)
    text = _texts(fig)
    assert [f"head {h}" in text for h in range(3)] == [True] * 3 and "head 3" not in text
    assert "head_dim=3" in text
    plt.close("all")


def test_kv_cache_figure_grows_by_one_key_per_step():
    text = _texts(figures.kv_cache_figure(prompt=4, steps=3))
    for held in (4, 5, 6):
        assert f"cache holds {held} keys and values" in text
    plt.close("all")


def test_workbench_figure_shows_the_way_a_piece_travels_and_both_endings():
    fig = figures.workbench_figure("MLP", made_in="04", used_in="05")
    text = _texts(fig)
    assert "part 04: you write\nMLP" in text and "MLP.py" in text
    assert 'workbench.use(\n"MLP")' in text and "part 05" in text
    assert "yours" in text and "the reference's" in text
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.tell() > 1000
    plt.close(fig)


# --- the head finder, on a GPT whose heads are built by hand -----------------------------
# Residual stream of width 3V + ... : [token one-hot (V) | position one-hot (P) | previous
# token (V)]. Layer 0, head 0 attends from position i to i - 1 (from positions alone) and
# writes the token it finds into the "previous token" slot; layer 1, head 0 attends to the
# position whose previous token is the current token: an induction head, by construction
# (Olsson et al. 2022's two-layer circuit). Every other head and every MLP is zero.
V, P = 8, 16
C = V + P + V  # 32


def _hand_built_gpt():
    import torch

    from gpt2course.model import GPT

    config = GPTConfig(vocab_size=V, context_length=P, n_embd=C, n_head=2, n_layer=2)
    model = GPT(config).eval()
    hd = C // 2
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for ln in [model.ln_f, *(m for b in model.h for m in (b.ln_1, b.ln_2))]:
            ln.weight.fill_(1.0)
        model.wte.weight[:, :V] = torch.eye(V)
        model.wpe.weight[:, V : V + P] = torch.eye(P)
        a0, a1 = model.h[0].attn, model.h[1].attn
        for d in range(P - 1):  # layer 0 head 0: query "position i - 1", key "position j"
            a0.c_attn.weight[d, V + d + 1] = 5.0
        for d in range(P):
            a0.c_attn.weight[C + d, V + d] = 1.0
        for d in range(V):  # ... value: the token; written into the "previous token" slot
            a0.c_attn.weight[2 * C + d, d] = 1.0
            a0.c_proj.weight[V + P + d, d] = 1.0
        for d in range(V):  # layer 1 head 0: query "my token", key "my previous token"
            a1.c_attn.weight[d, d] = 10.0
            a1.c_attn.weight[C + d, V + P + d] = 1.0
    assert hd >= max(P, V)
    return model


def test_head_scores_find_the_heads_built_by_hand():
    previous, induction = figures.head_scores(_hand_built_gpt(), n=8)
    assert previous.shape == induction.shape == (2, 2)
    assert previous[0, 0] > 0.9 and induction[1, 0] > 0.8
    # the others attend evenly (zero weights): about the mean of 1/(i+1), far below
    assert previous[0, 1] < 0.3 and previous[1].max() < 0.3
    assert induction[0].max() < 0.3 and induction[1, 1] < 0.3


def test_head_scores_of_uniform_attention_are_the_mean_of_one_over_positions():
    # Zero weights: every head spreads its attention evenly over the positions it sees, so
    # the scores are known exactly: mean over i of 1 / (i + 1).
    import torch

    from gpt2course.model import GPT

    model = GPT(GPTConfig(vocab_size=50, context_length=12, n_embd=8, n_head=2, n_layer=1))
    with torch.no_grad():
        model.h[0].attn.c_attn.weight.zero_()
        model.h[0].attn.c_attn.bias.zero_()
    previous, induction = figures.head_scores(model, n=6)
    expect_prev = sum(1 / (i + 1) for i in range(1, 12)) / 11
    expect_ind = sum(1 / (i + 1) for i in range(6, 12)) / 6
    assert torch.allclose(previous, torch.full((1, 2), expect_prev))
    assert torch.allclose(induction, torch.full((1, 2), expect_ind))


def test_head_scores_figure_writes_each_heads_score():
    import torch

    fig = figures.head_scores_figure(torch.tensor([[0.91, 0.1]]), torch.tensor([[0.2, 0.85]]), "t")
    text = _texts(fig)
    assert "0.91" in text and "0.85" in text and "induction score" in text
    plt.close(fig)


def test_rlhf_pipeline_is_instructgpts_order_with_dpo_beside_it():
    """Ouyang et al. 2022, figure 2: demonstrations (SFT), then a reward model on rankings,
    then PPO against it; Rafailov et al. 2023: DPO needs no reward model."""
    stages = [s for s, _, _ in figures.RLHF_STEPS]
    assert stages == ["pretraining", "instruction tuning", "reward model", "RL with a KL penalty"]
    text = _texts(figures.rlhf_pipeline_figure())
    assert "DPO" in text and "no reward model" in text
    for _, _, where in figures.RLHF_STEPS:
        assert f"measured: {where}" in text
    plt.close("all")
