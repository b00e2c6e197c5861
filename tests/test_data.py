"""Windows, loaders and the embedding sum, against plain slicing and torch's own ops."""

import pytest
import torch

from gpt2course import assets
from gpt2course.data import (
    TokenWindowDataset,
    embed,
    encode_text,
    load_text,
    make_dataloaders,
    make_windows,
)
from gpt2course.tokenizer.named import get_tokenizer


def slice_windows(ids, context_length, stride):
    """The obvious reference: slide a start index and slice."""
    out = []
    start = 0
    while start + context_length + 1 <= len(ids):
        out.append(
            (ids[start : start + context_length], ids[start + 1 : start + context_length + 1])
        )
        start += stride
    return out


@pytest.mark.parametrize("n", [5, 6, 17, 100])
@pytest.mark.parametrize("context_length", [1, 4])
@pytest.mark.parametrize("stride", [1, 2, 3, 4, 7])
def test_windows_match_slicing(n, context_length, stride):
    ids = list(range(1000, 1000 + n))
    ref = slice_windows(ids, context_length, stride)
    ds = TokenWindowDataset(ids, context_length, stride)
    assert len(ds) == len(ref)
    for (x, y), (rx, ry) in zip([ds[i] for i in range(len(ds))], ref, strict=True):
        assert x.dtype == y.dtype == torch.long
        assert x.tolist() == rx and y.tolist() == ry
        assert x[1:].tolist() == y[:-1].tolist()  # target = input shifted by one
    # first and last ids, spelled out
    assert ds[0][0][0].item() == ids[0]
    assert ds[-1][1][-1].item() == ref[-1][1][-1]
    inputs, targets = make_windows(torch.tensor(ids), context_length, stride)
    assert inputs.tolist() == [r[0] for r in ref]
    assert targets.tolist() == [r[1] for r in ref]


def test_dataset_index_errors():
    ds = TokenWindowDataset(list(range(10)), 4, 2)
    with pytest.raises(IndexError, match="3 windows"):
        ds[3]


@pytest.mark.parametrize(
    "n, context_length, stride, match",
    [
        (4, 4, 1, "too few for one window"),
        (10, 4, 0, "stride must be at least 1"),
        (10, 4, -2, "stride must be at least 1"),
        (10, 0, 1, "context_length must be at least 1"),
    ],
)
def test_window_bad_input(n, context_length, stride, match):
    with pytest.raises(ValueError, match=match):
        TokenWindowDataset(list(range(n)), context_length, stride)


def test_exactly_one_window():
    # context_length + 1 ids: input ids[0:4], target ids[1:5]
    ds = TokenWindowDataset(list(range(5)), 4, 3)
    assert len(ds) == 1 and ds[0][1].tolist() == [1, 2, 3, 4]


def test_window_rejects_float_and_2d_ids():
    with pytest.raises(TypeError, match="integers"):
        TokenWindowDataset(torch.rand(20), 4, 1)
    with pytest.raises(ValueError, match="flat"):
        TokenWindowDataset(torch.zeros(2, 10, dtype=torch.long), 4, 1)


def test_load_text():
    text = load_text("tinyshakespeare")
    assert text.startswith("First Citizen:")
    assert len(text) == 1115394
    with pytest.raises(FileNotFoundError, match="tinyshakespeare"):
        load_text("shakespear")


def test_encode_text_streams_a_file_or_a_folder_of_documents(tmp_path):
    """A folder's .txt files are documents, each followed by <|endoftext|> as GPT-2 saw them;
    the ids are tiktoken's on the whole text (here with runs of newlines and spaces that a
    line-by-line encode would cut differently)."""
    tik = assets.tiktoken_gpt2()
    docs = ["First.\n\n\n\nSecond  \n   para.\n", "  spaced   out \n\n\n", "é" * 70_000 + "\n"]
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    for i, doc in enumerate(docs):
        (folder / ("sub" if i == 2 else "") / f"{i}.txt").write_text(doc, encoding="utf-8")
    (folder / "notes.md").write_text("not a .txt file")
    eot = "<|endoftext|>"
    want = tik.encode("".join(d + eot for d in docs), allowed_special={eot})
    got = encode_text(str(folder), get_tokenizer("gpt2"))
    assert got.dtype == torch.long and got.tolist() == want
    assert encode_text(str(folder / "0.txt"), get_tokenizer("gpt2")).tolist() == tik.encode(docs[0])
    text = load_text("shakespeare")
    assert encode_text("shakespeare", get_tokenizer("bytes")).tolist() == list(text.encode())
    (tmp_path / "empty").mkdir()
    for bad, match in ((tmp_path / "empty", "no .txt files"), (tmp_path / "nope", "unknown text")):
        with pytest.raises(FileNotFoundError, match=match):
            encode_text(str(bad), get_tokenizer("gpt2"))
    (folder / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8 text .*save it as UTF-8"):
        encode_text(str(folder), get_tokenizer("gpt2"))


def test_dataloaders_split_and_shapes():
    enc = assets.tiktoken_gpt2()
    text = load_text("tinyshakespeare")[:20000]
    ids = enc.encode(text)
    train, val = make_dataloaders(text, context_length=32, batch_size=4, val_fraction=0.1, seed=1)
    x, y = next(iter(train))
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    # the split is contiguous: validation is the tail of the ids, in order (the split of
    # training's split_tokens: the first int(0.9 * n) ids train)
    n_train_ids = int(len(ids) * 0.9)
    vx, vy = next(iter(val))
    assert vx[0].tolist() == ids[n_train_ids:][:32]
    assert len(train.dataset) == (n_train_ids - 33) // 32 + 1
    # the same seed gives the same batches; ids give what the text gives
    train2, _ = make_dataloaders(ids, context_length=32, batch_size=4, val_fraction=0.1, seed=1)
    assert torch.equal(next(iter(train2))[0], x)


def test_dataloaders_bad_input():
    with pytest.raises(ValueError, match="validation split"):
        make_dataloaders(list(range(100)), context_length=32, val_fraction=0.1)
    with pytest.raises(ValueError, match="val_fraction"):
        make_dataloaders(list(range(100)), context_length=8, val_fraction=1.5)
    with pytest.raises(ValueError, match="stride"):
        make_dataloaders(list(range(100)), context_length=8, stride=0)


def test_embed_matches_gpt2_inputs():
    # Independent reference: transformers' GPT-2 computes inputs_embeds + position_embeds.
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    hf = GPT2Model(cfg).eval()
    idx = torch.randint(0, 50, (3, 7))
    with torch.no_grad():
        expected = hf(idx, output_hidden_states=True).hidden_states[0]
    with torch.no_grad():
        got = embed(idx, hf.wte, hf.wpe)
    assert got.shape == (3, 7, 8)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="crop"):
        embed(torch.zeros(1, 17, dtype=torch.long), hf.wte, hf.wpe)


# --- the exercises' checks: each typical wrong solution is named -----------------------------

from gpt2course import checks  # noqa: E402


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)


def windows_solution(ids, context_length, stride, *, shift=1, last=True, step=None):
    stop = len(ids) - context_length - (0 if last else 1)
    starts = range(0, stop, step or stride)
    xs = [ids[s : s + context_length] for s in starts]
    ys = [ids[s + shift : s + shift + context_length] for s in starts]
    return torch.tensor(xs), torch.tensor(ys)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shift=0), "the target is the input itself"),
        (dict(last=False), "the last window is missing"),
        (dict(step=1), "ignore the stride"),
    ],
)
def test_check_make_windows_names_the_bug(lenient, capsys, kwargs, message):
    def wrong(ids, context_length, stride):
        return windows_solution(ids, context_length, stride, **kwargs)

    assert checks.check_make_windows(wrong) is make_windows
    out = capsys.readouterr().out
    assert out.startswith("✗ make_windows") and message in out


def test_check_make_windows_accepts_right_and_unfinished(lenient, capsys):
    right = windows_solution
    assert checks.check_make_windows(right) is right
    assert "✓ make_windows" in capsys.readouterr().out

    def stub(ids, context_length, stride):
        raise NotImplementedError

    assert checks.check_make_windows(stub) is make_windows
    assert "not done yet" in capsys.readouterr().out


def test_check_make_windows_strict_raises(monkeypatch):
    monkeypatch.setenv("GPT2COURSE_STRICT_CHECKS", "1")
    with pytest.raises(checks.CheckFailure, match="shifted by one"):
        checks.check_make_windows(lambda ids, c, s: windows_solution(ids, c, s, shift=0))


def embed_solution(idx, wte, wpe, bug=None):
    T = idx.size(1)
    pos = torch.arange(T)
    if bug == "no_wpe":
        return wte(idx)
    if bug == "wpe_of_ids":
        return wte(idx) + wpe(idx)
    if bug == "from_one":
        return wte(idx) + wpe(pos + 1)
    if bug == "concat":
        return torch.cat([wte(idx), wpe(pos).expand(idx.size(0), -1, -1)], dim=-1)
    return wte(idx) + wpe(pos)


@pytest.mark.parametrize(
    "bug, message",
    [
        ("no_wpe", "position embeddings are missing"),
        ("wpe_of_ids", "looked up with the token ids"),
        ("from_one", "start at 1"),
        ("concat", "concatenated"),
    ],
)
def test_check_embed_names_the_bug(lenient, capsys, bug, message):
    assert checks.check_embed(lambda i, t, p: embed_solution(i, t, p, bug)) is embed
    out = capsys.readouterr().out
    assert out.startswith("✗ embed") and message in out


def test_check_embed_accepts_right(lenient, capsys):
    assert checks.check_embed(embed_solution) is embed_solution
    assert "✓ embed" in capsys.readouterr().out
