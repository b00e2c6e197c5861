"""Our tokenizers against independent references: tiktoken's "gpt2" encoding for the real
vocabulary, and tiktoken built from our own merges for trained tokenizers."""

from __future__ import annotations

import hashlib
import random
import sysconfig
import tracemalloc
import warnings
from pathlib import Path

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt2course import assets
from gpt2course.tokenizer import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    GPT2Tokenizer,
    basic,
    bpe,
    load_gpt2_tokenizer,
    train_bpe,
)
from gpt2course.tokenizer.named import get_tokenizer
from gpt2course.workshop.bench.tokenizer import train_bpe_naive


@pytest.fixture(scope="module")
def ours() -> GPT2Tokenizer:
    return load_gpt2_tokenizer()


@pytest.fixture(scope="module")
def tik():
    return assets.tiktoken_gpt2()


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return assets.fetch("tinyshakespeare.txt").read_text(encoding="utf-8")


# --- GPT-2's vocabulary ------------------------------------------------------------------


def test_sizes_and_vocab_match_tiktoken(ours, tik):
    assert ours.n_vocab == tik.n_vocab == 50257
    assert ours.eot_token == tik.eot_token == 50256
    assert len(ours.merges) == 50000
    assert all(ours.vocab[i] == tik.decode_single_token_bytes(i) for i in range(tik.n_vocab))


def test_from_files_explicit_paths(tik):
    tok = GPT2Tokenizer.from_files(assets.fetch("vocab.bpe"), assets.fetch("encoder.json"))
    assert tok.encode("Hello world") == tik.encode("Hello world")


def test_from_files_rejects_wrong_file(tmp_path):
    bad = tmp_path / "vocab.bpe"
    bad.write_text("not a merges file\n")
    with pytest.raises(ValueError, match="vocab.bpe"):
        GPT2Tokenizer.from_files(bad, assets.fetch("encoder.json"))


def test_all_of_tiny_shakespeare(ours, tik, shakespeare):
    ids = ours.encode(shakespeare)
    assert ids == tik.encode(shakespeare)
    assert ours.decode(ids) == shakespeare


def _stdlib_text(limit: int = 3_000_000) -> list[tuple[str, str]]:
    """A few MB that nobody here wrote: Python's docs (pydoc topics) and stdlib sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [root / "pydoc_data" / "topics.py", *sorted(root.glob("*.py"))]
    out, total = [], 0
    for f in files:
        if f.is_file() and total < limit:
            text = f.read_text(encoding="utf-8", errors="replace")
            out.append((f.name, text))
            total += len(text)
    return out


@pytest.mark.slow
def test_python_stdlib_sources_and_docs(ours, tik):
    texts = _stdlib_text()
    assert sum(len(t) for _, t in texts) > 2_000_000
    for name, text in texts:
        got, want = ours.encode_ordinary(text), tik.encode_ordinary(text)
        if got != want:
            k = next(i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b)
            pytest.fail(
                f"{name}: first difference at token {k}: {tik.decode(want[k - 3 : k + 3])!r}"
            )
        assert ours.decode(got) == text


# Characters from everywhere: emoji (with ZWJ and skin tones), combining marks, CJK,
# Arabic, Devanagari, digits of several scripts, and lots of whitespace.
_PIECES = [
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    "\u00a0",
    "\u3000",
    "'s",
    "'ll",
    "'T",
    "0",
    "123",
    "٣",
    "१",
    "a",
    "The",
    " the",
    "é",
    "e\u0301",
    "ñ",
    "漢字",
    "ひらがな",
    "한국어",
    "مرحبا",
    "नमस्ते",
    "Ω",
    "😀",
    "👍🏽",
    "👩\u200d👩\u200d👧",
    "🇫🇷",
    "\u200b",
    "—",
    "...",
    "!!",
    "<|",
    "|>",
    " SolidGoldMagikarp",
    "\x00",
    "\x7f",
    "\ufffd",
]
_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(_PIECES), max_size=60).map("".join),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from([" ", "\n", "9", "0", "a", "\t", "😀"]),
        st.integers(0, 300),
    ),
    st.lists(st.one_of(st.text(max_size=8), st.sampled_from(_PIECES)), max_size=40).map("".join),
    # One long chunk (letters only, or digits only): the encoder's heap-based path.
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzTHEéßøΩжя漢字", min_size=60, max_size=400),
    st.text(alphabet="0123456789", min_size=60, max_size=400),
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_texts)
def test_arbitrary_unicode_matches_tiktoken(ours, tik, text):
    ids = ours.encode_ordinary(text)
    assert ids == tik.encode_ordinary(text)
    assert ours.decode(ids) == text


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ids=st.lists(st.integers(0, 50256), max_size=30))
def test_decode_any_ids_like_tiktoken(ours, tik, ids):
    assert ours.decode(ids) == tik.decode(ids)  # never raises: broken UTF-8 becomes U+FFFD


def _encode_in_order_of_frequency(text, merges):
    """A likely part-1 mistake: merge the most frequent pair, not the earliest learned."""
    ids = list(text.encode("utf-8"))
    while len(ids) > 1:
        counts = basic.count_pairs(ids)
        known = [p for p in counts if p in merges]
        if not known:
            break
        pair = max(known, key=counts.get)
        ids = basic.merge(ids, pair, merges[pair])
    return ids


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_texts)
def test_part_1s_functions_give_tiktokens_ids(ours, tik, text):
    # Part 7 encodes with the learner's encode and decode (here part 1's reference ones).
    mine = ours.built_on(basic.encode, basic.decode)
    ids = mine.encode_ordinary(text)
    assert ids == tik.encode_ordinary(text)
    assert mine.decode(ids) == text


def test_part_1s_functions_with_specials_and_a_wrong_encode(ours, tik, shakespeare):
    mine = ours.built_on(basic.encode, basic.decode)
    text = shakespeare[:3000] + "<|endoftext|> naïve café, 漢字 👩‍👩‍👧, 3.14159"
    assert mine.encode(text, allowed_special="all") == tik.encode(text, allowed_special="all")
    assert mine.decode(tik.encode("😀")[:-1]) == tik.decode(tik.encode("😀")[:-1])
    wrong = ours.built_on(_encode_in_order_of_frequency, basic.decode)
    assert wrong.encode(shakespeare[:3000]) != tik.encode(shakespeare[:3000])


def test_very_long_chunk(ours, tik):
    # 20,000 letters with no space are one chunk: this must be exact and not quadratic.
    rng = random.Random(0)
    text = "".join(rng.choice("ACGTacgtxyz") for _ in range(20_000))
    assert ours.encode(text) == tik.encode(text)


def test_partial_utf8_gives_replacement_char(ours, tik):
    ids = ours.encode("😀")
    assert len(ids) > 1
    assert ours.decode(ids[:-1]) == tik.decode(ids[:-1])
    assert "\ufffd" in ours.decode(ids[:-1])


def test_lone_surrogate_like_tiktoken(ours, tik):
    assert ours.encode("a\ud800b") == tik.encode("a\ud800b")


def test_special_tokens_like_tiktoken(ours, tik):
    text = "Hello<|endoftext|> world"
    with pytest.raises(ValueError, match="disallowed special token"):
        ours.encode(text)
    with pytest.raises(ValueError):
        tik.encode(text)
    for kw in (
        {"allowed_special": "all"},
        {"allowed_special": {"<|endoftext|>"}},
        {"disallowed_special": ()},
    ):
        assert ours.encode(text, **kw) == tik.encode(text, **kw)
    assert ours.encode(text, allowed_special="all").count(50256) == 1
    assert ours.decode([50256]) == "<|endoftext|>"


def test_allowing_an_unknown_special_token_is_ignored_like_tiktoken(trained, tik):
    text = "the end<|endoftext|>"
    kw = {"allowed_special": {"<|endoftext|>"}}
    assert trained.encode(text, **kw) == trained.encode_ordinary(text)  # it has no specials
    assert load_gpt2_tokenizer().encode("x", allowed_special={"<|foo|>"}) == tik.encode(
        "x", allowed_special={"<|foo|>"}
    )


def test_allowed_special_as_a_bare_string_is_explained(ours):
    with pytest.raises(TypeError, match=r"allowed_special=\{'<\|endoftext\|>'\}"):
        ours.encode("x", allowed_special="<|endoftext|>")


@pytest.mark.parametrize("bad", [b"bytes", None, 42, ["a", "list"]])
def test_non_string_text_is_a_type_error(ours, bad):
    with pytest.raises(TypeError, match="expects a str"):
        ours.encode(bad)


@pytest.mark.parametrize("bad", [[50257], [-1], [1, 2, 10**9]])
def test_out_of_range_ids_raise_clearly(ours, bad):
    with pytest.raises(ValueError, match="out of range.*0 to 50256"):
        ours.decode(bad)


def test_decode_accepts_tensors_and_rejects_batches(ours):
    torch = pytest.importorskip("torch")
    ids = ours.encode("Hello there")
    assert ours.decode(torch.tensor(ids)) == "Hello there"
    with pytest.raises(TypeError, match="batch"):
        ours.decode(torch.tensor([ids, ids]))
    with pytest.raises(TypeError, match="integers"):
        ours.decode([1.5])


# --- trained tokenizers ------------------------------------------------------------------


def _as_tiktoken(tok: BPETokenizer) -> tiktoken.Encoding:
    """tiktoken running our merges: an independent encoder for the same vocabulary."""
    ranks = {tok.vocab[i]: i for i in tok.vocab if i not in tok.special_tokens.values()}
    assert len(ranks) == len(tok.vocab) - len(tok.special_tokens), "duplicate tokens"
    return tiktoken.Encoding("ours", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens={})


@pytest.fixture(scope="module")
def trained(shakespeare) -> BPETokenizer:
    return train_bpe(shakespeare, 1256)


def test_trained_tokenizer_encodes_like_tiktoken(trained, shakespeare):
    tik = _as_tiktoken(trained)
    sample = shakespeare[:200_000]
    assert trained.encode(sample) == tik.encode_ordinary(sample)
    assert trained.decode(trained.encode(sample)) == sample


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_texts)
def test_trained_tokenizer_any_text(trained, text):
    ids = trained.encode(text)
    assert ids == _TIK_CACHE.setdefault(id(trained), _as_tiktoken(trained)).encode_ordinary(text)
    assert trained.decode(ids) == text


_TIK_CACHE: dict[int, tiktoken.Encoding] = {}


def test_train_bpe_learns_the_same_merges_as_a_naive_recount(shakespeare):
    text = shakespeare[:10_000]
    assert train_bpe(text, 320).merges == train_bpe_naive(text, 320).merges


@settings(max_examples=40, deadline=None, database=None)
@given(text=st.text(alphabet="ab c\nd'é", max_size=120), extra=st.integers(0, 40))
def test_train_bpe_matches_naive_on_small_texts(text, extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train_bpe(text, 256 + extra).merges == train_bpe_naive(text, 256 + extra).merges


def test_train_bpe_on_one_chunk_matches_the_textbook_trainer():
    # With a pattern that keeps the text whole, train_bpe is plain BPE on one sequence.
    text = "aaabdaaabac" * 3 + "the theme then thee"
    merges = train_bpe(text, 266, pattern=r"(?s).+").merges
    assert list(merges) == list(_tie_smallest(list(text.encode()), 10))


def _tie_smallest(ids, n):
    merges = {}
    for k in range(n):
        counts = basic.count_pairs(ids)
        pair = min(counts, key=lambda p: (-counts[p], p))
        ids = basic.merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges


def test_train_bpe_bad_input():
    with pytest.raises(TypeError, match="expects a str"):
        train_bpe(b"bytes", 300)
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe("hello", 100)
    with pytest.warns(UserWarning, match="ran out of pairs"):
        tok = train_bpe("ab", 300)
    assert len(tok.merges) == 1


def test_save_and_load_round_trip(trained, ours, tmp_path):
    path = trained.save(tmp_path / "shakespeare.bpe")
    assert path.read_text().startswith("gpt2course-bpe v1\n")
    again = BPETokenizer.load(path)
    assert again.merges == trained.merges and again.vocab == trained.vocab
    text = "To be, or not to be: that is the question. 😀"
    assert again.encode(text) == trained.encode(text)
    gpt2 = GPT2Tokenizer.load(ours.save(tmp_path / "gpt2.bpe"))
    assert isinstance(gpt2, GPT2Tokenizer) and gpt2.eot_token == 50256
    assert gpt2.encode(text) == ours.encode(text)


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    with pytest.raises(ValueError, match="not a tokenizer saved by"):
        BPETokenizer.load(p)


def test_default_pattern_is_gpt2s(tik):
    import regex

    text = "I'm  here:   it's 2024!\n\n  Ça va?  "
    assert regex.findall(GPT2_SPLIT_PATTERN, text) == regex.findall(tik._pat_str, text)


# --- streaming encode (issue 27) ------------------------------------------------------------


def _split_at(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at each of ``cuts`` (any positions, repeats give empty chunks)."""
    edges = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    return [text[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@pytest.fixture(scope="module")
def gpt2_named():
    return get_tokenizer("gpt2")


@pytest.fixture
def every_chunk(monkeypatch):
    """Look for a cut after every chunk, not once 16k characters have gathered: the short
    texts below then test the cutting itself."""
    monkeypatch.setattr(bpe, "_SETTLE_AT", 0)


def test_encode_iterable_of_shakespeares_lines_is_tiktokens(gpt2_named, ours, tik, shakespeare):
    """Line by line, encode() would give 338,027 ids (each line ends a pre-token: "\\n\\n\\n" is
    not "\\n\\n" "\\n"); the stream gives tiktoken's 338,025, id for id."""
    lines = shakespeare.splitlines(keepends=True)
    want = tik.encode_ordinary(shakespeare)
    assert len(want) == 338_025
    assert sum(len(tik.encode_ordinary(line)) for line in lines) != len(want)
    assert list(gpt2_named.encode_iterable(lines)) == want
    assert list(ours.encode_iterable(iter(lines))) == want


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=st.one_of(
        _texts,
        # Runs of newlines, spaces and tabs between words and contractions: where a cut is
        # most likely to change a pre-token.
        st.lists(
            st.sampled_from(["\n", " ", "\t", "  ", "\n\n", "a", "ll", "'", "'ll", "9", "!", "é"]),
            max_size=80,
        ).map("".join),
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
)
def test_encode_iterable_any_split_is_tiktokens(every_chunk, gpt2_named, ours, tik, text, cuts):
    want = tik.encode_ordinary(text)
    chunks = _split_at(text, cuts)
    assert list(gpt2_named.encode_iterable(chunks)) == want
    assert list(ours.encode_iterable(chunks)) == want


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(start=st.integers(0, 1_000_000), cuts=st.lists(st.integers(0, 10_000), max_size=200))
def test_encode_iterable_random_splits_of_shakespeare(
    every_chunk, gpt2_named, tik, shakespeare, start, cuts
):
    text = shakespeare[start % len(shakespeare) :][:10_000]
    assert list(gpt2_named.encode_iterable(_split_at(text, cuts))) == tik.encode_ordinary(text)


def test_encode_iterable_of_a_trained_tokenizer_and_of_bytes(every_chunk, trained, shakespeare):
    text = shakespeare[:50_000]
    chunks = _split_at(text, list(range(0, 50_000, 37)))
    assert list(trained.encode_iterable(chunks)) == _as_tiktoken(trained).encode_ordinary(text)
    assert list(get_tokenizer("bytes").encode_iterable(chunks)) == list(text.encode("utf-8"))


def test_encode_iterable_refuses_bytes_chunks(gpt2_named, ours):
    for tok in (gpt2_named, ours):
        with pytest.raises(TypeError, match="expects a str, got bytes"):
            list(tok.encode_iterable([b"hello"]))


def test_encode_iterable_memory_does_not_grow_with_the_text(gpt2_named, tik, shakespeare, tmp_path):
    """A 3.3 MB file read line by line: the stream's Python allocations peak under 1 MiB
    (encoding it at once holds the text, its pre-tokens and the ids: tens of MiB)."""
    f = tmp_path / "big.txt"
    f.write_text(shakespeare * 3, encoding="utf-8")
    want = tik.encode_ordinary(shakespeare * 3)
    digest, n = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        with open(f, encoding="utf-8") as lines:
            for i in gpt2_named.encode_iterable(lines):
                digest.update(i.to_bytes(2, "little"))
                n += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == len(want)
    assert (
        digest.digest() == hashlib.sha256(b"".join(i.to_bytes(2, "little") for i in want)).digest()
    )
    assert peak < 1 << 20, f"peak {peak / 2**20:.1f} MiB"


# --- special tokens in training (issue 27) -------------------------------------------------

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def documents(shakespeare) -> list[str]:
    """Speeches as documents: each starts with a name and ends with "x\\n", so joining them
    makes no pre-token that spans two (a lone newline before a letter is one on its own)."""
    return [d.strip("\n") + "\n" for d in shakespeare[:150_000].split("\n\n")]


def test_train_bpe_learns_nothing_from_special_tokens(documents):
    joined = EOT.join(documents)
    plain = train_bpe(joined, 700)  # what special_tokens prevents: <|, endoftext, .<|
    assert any(b"<|" in t or b"endoftext" in t for t in plain.vocab.values())
    tok = train_bpe(joined, 700, special_tokens=[EOT, "<|im_end|>"])
    # The special tokens add no pair to count: the merges are those of the documents alone.
    assert tok.merges == train_bpe("".join(documents), 698).merges
    assert tok.special_tokens == {EOT: 698, "<|im_end|>": 699} and tok.n_vocab == 700
    learned = [tok.vocab[i] for i in tok.merges.values()]
    assert not any(b"<|" in t or b"|>" in t or b"endoftext" in t for t in learned)


def test_special_tokens_of_a_trained_tokenizer_encode_like_tiktoken(documents, tmp_path):
    tok = train_bpe(EOT.join(documents[:200]), 500, special_tokens=[EOT, "<|im_end|>"])
    ranks = {tok.vocab[i]: i for i in range(256 + len(tok.merges))}
    tik = tiktoken.Encoding("t", pat_str=tok.pattern, mergeable_ranks=ranks,
                            special_tokens=tok.special_tokens)  # fmt: skip
    text = f"Hello{EOT} world<|im_end|>, and <|im_end and {EOT}{EOT}."
    with pytest.raises(ValueError, match="disallowed special token"):
        tok.encode(text)  # text that spells a control token is never read as one silently
    with pytest.raises(ValueError):
        tik.encode(text)

    def outcome(enc, kw):
        try:
            return enc.encode(text, **kw)
        except ValueError:
            return "refused"

    for kw in ({"allowed_special": "all"}, {"allowed_special": {EOT}}, {"disallowed_special": ()},
               {"allowed_special": {EOT}, "disallowed_special": ()},
               {"disallowed_special": {EOT}}, {"allowed_special": {"<|im_end|>"}}):  # fmt: skip
        assert outcome(tok, kw) == outcome(tik, kw), kw
    assert tok.encode(text, allowed_special="all").count(tok.special_tokens[EOT]) == 3
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)  # stays text
    assert BPETokenizer.load(tok.save(tmp_path / "t.bpe")).special_tokens == tok.special_tokens


@pytest.mark.parametrize(
    "special, vocab, exc, match",
    [
        (EOT, 300, TypeError, r"did you mean special_tokens=\['<\|endoftext\|>'\]"),
        ([EOT, EOT], 300, ValueError, "distinct non-empty"),
        ([""], 300, ValueError, "distinct non-empty"),
        ([EOT, "<|x|>"], 257, ValueError, "vocab_size must be an int >= 258"),
    ],
)
def test_train_bpe_bad_special_tokens(special, vocab, exc, match):
    with pytest.raises(exc, match=match):
        train_bpe("hello world", vocab, special_tokens=special)
