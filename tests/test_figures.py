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
    for fig in (figures.roadmap_figure(), figures.timeline_figure()):
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
