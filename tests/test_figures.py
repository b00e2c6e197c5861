"""The roadmap and timeline figures: they render, and their data agrees with the sources."""

import io

import matplotlib.pyplot as plt

from gpt2course import course, figures
from gpt2course.model import GPTConfig


def test_roadmap_has_one_box_per_notebook_in_order():
    assert [p for p, _, _ in figures.ROADMAP] == [nb.slug[:2] for nb in course.NOTEBOOKS]


def test_timeline_is_chronological_and_matches_published_facts():
    years = [m.year for m in figures.TIMELINE]
    assert years == sorted(years)
    by_name = {m.name: m for m in figures.TIMELINE}
    # GPT-2's context is its position table (Radford et al. 2019: 1,024 tokens).
    assert by_name["GPT-2"].context == f"{GPTConfig.from_name('gpt2').n_positions:,}"
    assert by_name["GPT-3"].params == "175B"  # Brown et al. 2020
    assert by_name["GPT-4"].params == "undisclosed"  # the GPT-4 report withheld it
    assert "GPT-3.5" in by_name["ChatGPT"].access  # OpenAI's ChatGPT post
    assert all(m.source for m in figures.TIMELINE)


def test_figures_render():
    for fig in (figures.roadmap_figure(), figures.timeline_figure()):
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 1000
        plt.close(fig)
