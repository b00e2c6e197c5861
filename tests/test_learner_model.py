"""The solutions of parts 3-5, run as a learner runs them, make a GPT-2 that takes real weights.

The exercise cells are taken from the notebooks' own sources (solutions version), run one
namespace per notebook, each followed by its check cell, as Jupyter would; later notebooks
get the pieces through the workbench only. The model that comes out is compared with
transformers' GPT2LMHeadModel on the same checkpoint.
"""

from __future__ import annotations

import linecache
import warnings

import pytest
import torch

from gpt2course import checks, generation, workbench
from gpt2course.pretrained import load_weights
from gpt2course.workshop import course

transformers = pytest.importorskip("transformers")

TINY = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=101, context_length=64)


def hf_names(shape: dict) -> dict:
    """The same shape in transformers' GPT2Config names (context_length is n_positions there)."""
    return {("n_positions" if k == "context_length" else k): v for k, v in shape.items()}


def exercise_cells(slug: str) -> list[str]:
    """Each solved exercise cell of a notebook, followed by its check cell, in order."""
    nb = course.find(slug)
    cells = course.parse_source(course.source_path(nb).read_text(encoding="utf-8"))
    out = []
    for i, (kind, src, _) in enumerate(cells):
        if kind == "code" and "# BEGIN SOLUTION" in src:
            out.append(course.keep_solutions(src))
            check = cells[i + 1][1]
            assert "checks.check_" in check, f"{slug}: the cell after an exercise checks it"
            out.append(check)
    return out


class Notebook:
    """One kernel: cells share a namespace, and their text is in linecache as IPython puts it."""

    def __init__(self, name: str) -> None:
        self.name, self.n = name, 0
        self.ns: dict = {"checks": checks, "workbench": workbench}
        exec(workbench._PRELUDE, self.ns)

    def run(self, source: str) -> None:
        self.n += 1
        filename = f"/tmp/ipykernel_{self.name}/{self.n}.py"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.ns)


def run_parts_3_to_5(replace: dict[str, tuple[str, str]] | None = None) -> None:
    """Parts 3, 4 and 5 as a learner does them; ``replace`` edits one exercise's code."""
    replace = replace or {}
    setup = {
        "03_attention": [],
        "04_transformer_block": ['CausalSelfAttention = workbench.use("CausalSelfAttention")'],
        "05_gpt2_and_generation": ['Block = workbench.use("Block")'],
    }
    for slug, first in setup.items():
        nb = Notebook(slug[:2])
        for cell in first + exercise_cells(slug):
            for old, new in replace.values():
                cell = cell.replace(old, new)
            if "generate_step" in cell or "sample_next_token" in cell or "LayerCache" in cell:
                continue  # part 5's generation exercises are not model pieces
            nb.run(cell)


def hf_checkpoint(folder):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(**hf_names(TINY), attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg.bos_token_id = cfg.eos_token_id = None
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(folder, safe_serialization=True)
    return hf


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_WORKBENCH", str(tmp_path / "bench"))
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)


def _their_model(tmp_path):
    hf = hf_checkpoint(tmp_path / "ckpt")
    GPT = workbench.use("GPT", quiet=True)
    from gpt2course.config import GPTConfig

    model = load_weights(GPT(GPTConfig(**TINY)), tmp_path / "ckpt").eval()
    return hf, model


def test_the_solutions_make_a_gpt2_of_the_learners_classes_that_takes_real_weights(
    bench, tmp_path, capsys
) -> None:
    run_parts_3_to_5()
    out = capsys.readouterr().out
    assert out.count("✓") >= 9 and "✗" not in out, out
    hf, model = _their_model(tmp_path)
    assert workbench.describe(model) == (
        "This model's parts: yours: GPT, Block, LayerNorm, CausalSelfAttention, MLP; "
        "the reference's: none."
    )
    idx = torch.randint(0, TINY["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(idx).logits
        got = model(idx)
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4
    ours = generation.generate(model, idx[:1, :5], 20, temperature=0)
    theirs = hf.generate(idx[:1, :5], max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(ours, theirs), "greedy text from the learner's classes equals transformers'"


def test_a_wrong_mlp_falls_back_alone_and_the_rest_stays_the_learners(
    bench, tmp_path, capsys
) -> None:
    relu = (
        "return self.c_proj(gelu(self.c_fc(x)))",
        "return self.c_proj(torch.relu(self.c_fc(x)))",
    )
    run_parts_3_to_5({"MLP": relu})
    assert "✗ MLP" in capsys.readouterr().out
    hf, model = _their_model(tmp_path)
    line = workbench.describe(model)
    assert "yours: GPT, Block, LayerNorm, CausalSelfAttention;" in line, line
    assert "reference's: MLP" in line, line
    idx = torch.randint(0, TINY["vocab_size"], (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert ((model(idx) - hf(idx).logits).abs().max()).item() < 1e-4
