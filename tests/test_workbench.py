"""The workbench carries a learner's checked pieces into later notebooks, each on its own."""

from __future__ import annotations

import linecache
import textwrap

import pytest
import torch

from gpt2course import checks, workbench

# What a learner writes in parts 3 and 4, in the notebooks' own style (globals between cells).
CELLS = {
    "causal_mask": """
        def causal_mask(T):
            return torch.tril(torch.ones(T, T)).bool()
    """,
    "scaled_dot_product_attention": """
        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v
    """,
    "split_heads": """
        def split_heads(x, n_head):
            B, T, C = x.shape
            return x.view(B, T, n_head, C // n_head).transpose(1, 2)
    """,
    "merge_heads": """
        def merge_heads(x):
            B, H, T, D = x.shape
            return x.transpose(1, 2).reshape(B, T, H * D)
    """,
    "CausalSelfAttention": """
        class CausalSelfAttention(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.n_head, self.n_embd = config.n_head, config.n_embd
                self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
                self.c_proj = nn.Linear(config.n_embd, config.n_embd)

            def forward(self, x):
                q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
                q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
                y = scaled_dot_product_attention(q, k, v, mask=causal_mask(x.size(1)).to(x.device))
                return self.c_proj(merge_heads(y))
    """,
    "gelu": """
        def gelu(x):
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    """,
    "MLP": """
        class MLP(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
                self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

            def forward(self, x):
                return self.c_proj(gelu(self.c_fc(x)))
    """,
    "Block": """
        class Block(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.ln_1 = nn.LayerNorm(config.n_embd)
                self.attn = CausalSelfAttention(config)
                self.ln_2 = nn.LayerNorm(config.n_embd)
                self.mlp = MLP(config)

            def forward(self, x):
                x = x + self.attn(self.ln_1(x))
                return x + self.mlp(self.ln_2(x))
    """,
}
WRONG_MLP = CELLS["MLP"].replace("gelu(self.c_fc(x))", "torch.relu(self.c_fc(x))")


class Notebook:
    """Cells run the way IPython runs them: each one's text in linecache, one namespace."""

    def __init__(self) -> None:
        self.ns: dict = {"checks": checks, "workbench": workbench}
        exec(workbench._PRELUDE, self.ns)
        self.n = 0

    def run(self, source: str) -> None:
        self.n += 1
        name = f"/tmp/ipykernel_0/cell{self.n}.py"
        text = textwrap.dedent(source)
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        exec(compile(text, name, "exec"), self.ns)

    def exercise(self, name: str, source: str) -> object:
        """The exercise cell, then its check cell, as the notebook has them."""
        self.run(source)
        self.run(f"{name} = checks.check_{_check_name(name)}({name})")
        return self.ns[name]


def _check_name(name: str) -> str:
    return workbench.PIECES[name].check.removeprefix("check_")


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_WORKBENCH", str(tmp_path / "bench"))
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)
    return tmp_path / "bench"


def _do_parts_3_and_4(cells: dict[str, str]) -> None:
    nb3, nb4 = Notebook(), Notebook()
    for name in ("causal_mask", "scaled_dot_product_attention", "split_heads", "merge_heads",
                 "CausalSelfAttention"):  # fmt: skip
        nb3.exercise(name, cells[name])
    nb4.run('CausalSelfAttention = workbench.use("CausalSelfAttention")')
    for name in ("layer_norm", "gelu", "MLP", "Block"):
        if name in cells:
            nb4.exercise(name, cells[name])


def test_a_passing_piece_is_kept_and_a_failing_one_is_not(bench, capsys) -> None:
    nb = Notebook()
    nb.exercise("gelu", CELLS["gelu"])
    nb.exercise("MLP", WRONG_MLP)
    assert "✓ gelu" in capsys.readouterr().out
    assert set(workbench.saved()) == {"gelu"}
    assert "def gelu(x)" in workbench.saved()["gelu"]


def test_a_class_defined_in_a_cell_is_kept_with_its_source(bench) -> None:
    nb = Notebook()
    nb.exercise("gelu", CELLS["gelu"])
    nb.exercise("MLP", CELLS["MLP"])
    assert workbench.saved()["MLP"].startswith("class MLP(nn.Module):")


def test_later_notebooks_build_on_the_learners_pieces(bench, capsys) -> None:
    _do_parts_3_and_4(CELLS)
    capsys.readouterr()
    Block = workbench.use("Block")
    assert "yours: Block" in capsys.readouterr().out
    block = Block(checks.transformer._config())
    assert type(block).__workbench__ == "yours"
    assert type(block.attn).__workbench__ == "yours", "the block holds the learner's attention"
    assert type(block.mlp).__workbench__ == "yours"


def test_a_wrong_mlp_falls_back_alone(bench, capsys) -> None:
    _do_parts_3_and_4({**CELLS, "MLP": WRONG_MLP})
    Block = workbench.use("Block", quiet=True)
    block = Block(checks.transformer._config())
    assert getattr(type(block.attn), "__workbench__", None) == "yours", "attention kept"
    assert getattr(type(block.mlp), "__workbench__", None) != "yours", "only the MLP falls back"
    assert getattr(type(block), "__workbench__", None) == "yours", "the learner's Block kept"
    line = workbench.describe(block)
    assert "yours: Block, CausalSelfAttention" in line and "reference's: MLP" in line


def test_a_saved_piece_that_no_longer_passes_is_not_used(bench, capsys) -> None:
    bench.mkdir(parents=True)
    (bench / "gelu.py").write_text("def gelu(x):\n    return torch.relu(x)\n")
    gelu = workbench.use("gelu")
    assert "no longer passes" in capsys.readouterr().out
    assert gelu(torch.tensor([-1.0])).item() != 0.0, "the reference GELU, not the saved ReLU"


def test_saved_code_that_crashes_is_reported_not_raised(bench, capsys) -> None:
    bench.mkdir(parents=True)
    (bench / "gelu.py").write_text("def gelu(x):\n    return x +\n")
    workbench.use("gelu")
    assert "your saved code failed, SyntaxError" in capsys.readouterr().out


def test_unknown_piece_lists_the_pieces(bench) -> None:
    with pytest.raises(KeyError, match="CausalSelfAttention"):
        workbench.use("Attention")


def test_a_later_failed_attempt_is_said_while_the_earlier_one_is_used(bench, capsys) -> None:
    nb = Notebook()
    nb.exercise("gelu", CELLS["gelu"])
    nb.exercise("gelu", "def gelu(x):\n    return torch.relu(x)\n")
    capsys.readouterr()
    workbench.use("gelu")
    line = capsys.readouterr().out
    assert "yours: gelu" in line and "your last attempt failed its check" in line, line
    nb.exercise("gelu", CELLS["gelu"])  # passing again: nothing to say
    capsys.readouterr()
    workbench.use("gelu")
    assert "last attempt" not in capsys.readouterr().out


HELPER_MLP = """
    def new_gelu(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    class MLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

        def forward(self, x):
            return self.c_proj(new_gelu(self.c_fc(x)))
"""


def test_a_helper_defined_in_the_same_cell_is_kept_with_the_piece(bench, capsys) -> None:
    nb = Notebook()
    nb.exercise("MLP", HELPER_MLP)
    assert "def new_gelu(x)" in workbench.saved()["MLP"]
    capsys.readouterr()
    MLP = workbench.use("MLP")
    assert "yours: MLP" in capsys.readouterr().out
    assert type(MLP(checks.transformer._config())).__workbench__ == "yours"


def test_a_helper_from_another_cell_is_named_when_missing(bench, capsys) -> None:
    nb = Notebook()
    helper, cls = HELPER_MLP.split("    class MLP", 1)
    nb.run(helper)
    nb.exercise("MLP", "    class MLP" + cls)
    capsys.readouterr()
    workbench.use("MLP")
    out = capsys.readouterr().out
    assert "new_gelu" in out and "not saved" in out, out


def test_a_piece_whose_sub_piece_fell_back_says_so(bench, capsys) -> None:
    _do_parts_3_and_4({**CELLS, "MLP": WRONG_MLP})
    capsys.readouterr()
    workbench.use("Block")
    out = capsys.readouterr().out
    assert "yours: Block (with the reference's MLP)" in out, out


def test_a_missing_piece_says_how_to_get_it_back(bench, capsys) -> None:
    workbench.use("MLP")
    assert "notebook 04" in capsys.readouterr().out


# Part 4's Block with the notebook's given LayerNorm, which runs the learner's layer_norm.
LAYER_NORM = """
    def layer_norm(x, weight, bias, eps=1e-5):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias
"""
LN_BLOCK = textwrap.dedent("""
    class LayerNorm(nn.Module):
        def __init__(self, n_embd, eps=1e-5):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n_embd))
            self.bias = nn.Parameter(torch.zeros(n_embd))
            self.eps = eps

        def forward(self, x):
            return layer_norm(x, self.weight, self.bias, self.eps)
""") + textwrap.dedent(CELLS["Block"].replace("nn.LayerNorm", "LayerNorm"))


def test_the_block_runs_the_learners_layer_norm(bench, capsys) -> None:
    _do_parts_3_and_4({**CELLS, "layer_norm": LAYER_NORM, "Block": LN_BLOCK})
    assert "class LayerNorm" in workbench.saved()["Block"]
    capsys.readouterr()
    Block = workbench.use("Block")
    out = capsys.readouterr().out
    assert "yours: Block." in out, out
    block = Block(checks.transformer._config())
    assert set(block.state_dict()) >= {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"}
    assert block.ln_1.forward.__globals__["layer_norm"].__workbench__ == "yours"
    assert "reference's: none" in workbench.describe(block), workbench.describe(block)
    # A layer_norm that no longer passes: the Block is still the learner's, and says with what.
    (bench / "layer_norm.py").write_text(
        "def layer_norm(x, weight, bias, eps=1e-5):\n    return x\n"
    )
    Block = workbench.use("Block")
    out = capsys.readouterr().out
    assert "yours: Block (with the reference's layer_norm)" in out, out
    block = Block(checks.transformer._config())
    assert block.ln_1.forward.__globals__["layer_norm"].__module__.startswith("gpt2course.")
    assert "the reference's: LayerNorm" in workbench.describe(block), workbench.describe(block)


TOKENIZER = {
    "count_pairs": """
        def count_pairs(ids):
            counts = {}
            for a, b in zip(ids, ids[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
            return counts
    """,
    "merge": """
        def merge(ids, pair, new_id):
            out, i = [], 0
            while i < len(ids):
                if ids[i : i + 2] == list(pair):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            return out
    """,
    "encode": """
        def encode(text, merges):
            ids = list(text.encode("utf-8"))
            while len(ids) > 1:
                pairs = count_pairs(ids)
                pair = min(pairs, key=lambda p: merges.get(p, float("inf")))
                if pair not in merges:
                    break
                ids = merge(ids, pair, merges[pair])
            return ids
    """,
    "decode": """
        def decode(ids, vocab):
            return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
    """,
}


def test_part_1s_tokenizer_reaches_part_7(bench, capsys) -> None:
    from gpt2course.assets import tiktoken_gpt2
    from gpt2course.tokenizer import load_gpt2_tokenizer

    nb = Notebook()
    for name, cell in TOKENIZER.items():
        nb.exercise(name, cell)
    capsys.readouterr()
    encode, decode = workbench.use("encode", "decode")
    assert "yours: encode, decode." in capsys.readouterr().out
    assert encode.__workbench__ == "yours"
    enc = load_gpt2_tokenizer().built_on(encode, decode)
    text = "In a shocking finding, scientists discovered a herd of unicorns 🦄 (1999)."
    ids = tiktoken_gpt2().encode(text)
    assert enc.encode(text) == ids and enc.decode(ids) == text


def test_the_learners_kv_cache_store_is_kept_for_generation(bench, capsys) -> None:
    from gpt2course.generation import generate

    nb = Notebook()
    nb.exercise(
        "LayerCache",
        """
        class LayerCache:
            def __init__(self):
                self.k = self.v = None

            def __len__(self):
                return 0 if self.k is None else self.k.shape[2]

            def update(self, k, v):
                if self.k is not None:
                    k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
                self.k, self.v = k, v
                return k, v
        """,
    )
    assert workbench.saved()["LayerCache"].startswith("class LayerCache:")
    capsys.readouterr()
    LayerCache = workbench.use("LayerCache")
    assert "yours: LayerCache" in capsys.readouterr().out
    assert LayerCache.__workbench__ == "yours"
    model = checks.generation._tiny_model(0)
    idx = torch.tensor([[1, 2, 3]])
    got = generate(model, idx, 8, temperature=0, use_cache=True, layer_cache=LayerCache)
    assert torch.equal(got, generate(model, idx, 8, temperature=0))
