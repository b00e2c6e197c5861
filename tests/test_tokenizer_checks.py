"""Each tokenization check passes the reference and names the bug in a typical wrong solution."""

from __future__ import annotations

from itertools import pairwise

import pytest

from gpt2course import checks
from gpt2course.tokenizer import basic


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)


@pytest.mark.parametrize(
    "check, ref",
    [
        (checks.check_count_pairs, basic.count_pairs),
        (checks.check_merge, basic.merge),
        (checks.check_train, basic.train_merges),
        (checks.check_encode, basic.encode),
        (checks.check_decode, basic.decode),
    ],
)
def test_reference_passes(capsys, check, ref):
    assert check(ref) is ref
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    "check, ref",
    [
        (checks.check_count_pairs, basic.count_pairs),
        (checks.check_merge, basic.merge),
        (checks.check_train, basic.train_merges),
        (checks.check_encode, basic.encode),
        (checks.check_decode, basic.decode),
    ],
)
def test_stub_falls_back_quietly(capsys, check, ref):
    def stub(*args):
        raise NotImplementedError("Exercise not done yet")

    assert check(stub) is ref
    assert capsys.readouterr().out.startswith("… ")


def _fails_with(capsys, check, wrong, *phrases):
    assert check(wrong) is not wrong
    out = capsys.readouterr().out
    assert out.startswith("✗"), out
    for phrase in phrases:
        assert phrase in out, out


def test_count_pairs_bugs(capsys):
    def last_missing(ids):
        counts = {}
        for i in range(len(ids) - 2):
            pair = (ids[i], ids[i + 1])
            counts[pair] = counts.get(pair, 0) + 1
        return counts

    _fails_with(capsys, checks.check_count_pairs, last_missing, "last pair is missing")
    _fails_with(
        capsys,
        checks.check_count_pairs,
        lambda ids: dict.fromkeys(pairwise(ids), 1),
        "counts once",
    )
    _fails_with(
        capsys, checks.check_count_pairs, lambda ids: list(pairwise(ids)), "should be a dict"
    )


def test_merge_bugs(capsys):
    def first_only(ids, pair, new_id):
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                return ids[:i] + [new_id] + ids[i + 2 :]
        return ids

    def no_skip(ids, pair, new_id):
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(new_id)
            else:
                out.append(ids[i])
            i += 1
        return out

    def in_place(ids, pair, new_id):
        ids[:] = basic.merge(ids, pair, new_id)
        return ids

    _fails_with(capsys, checks.check_merge, first_only, "only the first occurrence")
    _fails_with(capsys, checks.check_merge, in_place, "changed the list it was given")
    # no_skip keeps the second half: [1, 2, 3] -> [99, 2, 3]; its diagnosis is generic but clear
    _fails_with(capsys, checks.check_merge, no_skip, "merge([1, 2, 3, 1, 2], (1, 2), 99)")


def test_train_bugs(capsys):
    def no_update(ids, num_merges):
        counts = basic.count_pairs(ids)
        top = sorted(counts, key=counts.get, reverse=True)[:num_merges]
        return {pair: 256 + i for i, pair in enumerate(top)}

    def ids_from_zero(ids, num_merges):
        return {p: i - 256 for p, i in basic.train_merges(ids, num_merges).items()}

    def least_frequent(ids, num_merges):
        merges = {}
        for i in range(num_merges):
            counts = basic.count_pairs(ids)
            pair = min(counts, key=counts.get)
            ids = basic.merge(ids, pair, 256 + i)
            merges[pair] = 256 + i
        return merges

    _fails_with(capsys, checks.check_train, no_update, "apply each merge to ids")

    def same_pair_each_round(ids, num_merges):
        merges = {}
        for k in range(num_merges):
            counts = basic.count_pairs(ids)
            merges[max(counts, key=counts.get)] = 256 + k
        return merges

    _fails_with(capsys, checks.check_train, same_pair_each_round, "the same pair won again")
    _fails_with(capsys, checks.check_train, ids_from_zero, "the first new token is 256")
    _fails_with(capsys, checks.check_train, least_frequent, "use max, not min")


def test_encode_bugs(capsys):
    def no_utf8(text, merges):
        ids = [ord(c) for c in text]
        for pair, new_id in merges.items():
            ids = basic.merge(ids, pair, new_id)
        return ids

    def crashes_on_short(text, merges):
        ids = list(text.encode())
        while True:
            pair = min(basic.count_pairs(ids), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                return ids
            ids = basic.merge(ids, pair, merges[pair])

    def by_frequency(text, merges):
        ids = list(text.encode())
        while len(ids) >= 2:
            counts = basic.count_pairs(ids)
            known = [p for p in counts if p in merges]
            if not known:
                break
            pair = max(known, key=counts.get)
            ids = basic.merge(ids, pair, merges[pair])
        return ids

    _fails_with(capsys, checks.check_encode, crashes_on_short, "fewer than 2 ids")
    _fails_with(capsys, checks.check_encode, by_frequency, "smallest merge id")
    capsys.readouterr()
    out_utf8 = checks.check_encode(no_utf8)
    assert out_utf8 is basic.encode
    assert "text.encode('utf-8')" in capsys.readouterr().out


def test_encode_in_learned_order_passes(capsys):
    def in_order(text, merges):
        ids = list(text.encode("utf-8"))
        for pair, new_id in merges.items():  # replaying merges in order is also right
            ids = basic.merge(ids, pair, new_id)
        return ids

    assert checks.check_encode(in_order) is in_order


def test_decode_bugs(capsys):
    def each(ids, vocab):
        return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)

    def strict(ids, vocab):
        return b"".join(vocab[i] for i in ids).decode("utf-8")

    def returns_bytes(ids, vocab):
        return b"".join(vocab[i] for i in ids)

    _fails_with(capsys, checks.check_decode, each, "join all the bytes first")
    _fails_with(capsys, checks.check_decode, strict, "errors='replace'")
    _fails_with(capsys, checks.check_decode, returns_bytes, "returned bytes")
