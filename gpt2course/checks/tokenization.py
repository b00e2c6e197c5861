"""Checks for the tokenization exercises: pair counting, one merge, the training loop,
encode and decode (notebook 01)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from ..tokenizer import basic as ref
from ._core import CheckFailure, compare_values, run_check

__all__ = ["check_count_pairs", "check_merge", "check_train", "check_encode", "check_decode"]

Pair = tuple[int, int]


def _dict_of(got: object, what: str) -> dict:
    if not isinstance(got, dict):
        raise CheckFailure(
            f"{what} should be a dict mapping (id, id) pairs to ints, got {type(got).__name__}"
        )
    return got


# --- count_pairs ------------------------------------------------------------------------


def _pairs_without_last(ids):
    return ref.count_pairs(ids[:-1])


def _pairs_once_each(ids):
    return dict.fromkeys(pairwise(ids), 1)


def _pairs_not_overlapping(ids):
    counts, i = {}, 0
    while i + 1 < len(ids):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2
    return counts


def check_count_pairs(count_pairs: Callable[[list[int]], dict[Pair, int]], hint: int = 1):
    """Check ``count_pairs(ids) -> {(a, b): count}`` against the reference."""

    def test(f):
        cases = [[5, 5, 5, 5, 1], [1, 2, 3, 1, 2], [7], [], list(b"hello hello")]
        for ids in cases:
            got = _dict_of(f(list(ids)), f"count_pairs({ids})")
            compare_values(
                dict(got),
                ref.count_pairs(ids),
                what=f"count_pairs({ids})",
                likely_bugs=[
                    (
                        "the last pair is missing: pairwise(ids) reaches the end",
                        _pairs_without_last(ids),
                    ),
                    (
                        "pairs overlap: in [5, 5, 5] the pair (5, 5) occurs twice",
                        _pairs_not_overlapping(ids),
                    ),
                    ("each pair counts once: add 1 every time it occurs", _pairs_once_each(ids)),
                ],
            )

    return run_check("count_pairs", count_pairs, ref.count_pairs, test, hint=hint)


# --- merge ------------------------------------------------------------------------------


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_no_skip(ids, pair, new_id):
    out = []
    for i in range(len(ids) - 1):
        out.append(new_id if (ids[i], ids[i + 1]) == pair else ids[i])
    return out


def _merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def check_merge(merge: Callable[[list[int], Pair, int], list[int]], hint: int = 1):
    """Check ``merge(ids, pair, new_id) -> new ids`` against the reference."""

    def test(f):
        cases = [
            ([1, 2, 3, 1, 2], (1, 2), 99),
            ([1, 2, 3], (1, 2), 99),
            ([3, 1, 2], (1, 2), 99),
            ([5, 5, 5], (5, 5), 256),
            ([5, 5, 5, 5], (5, 5), 256),
            ([4, 1, 2, 1, 2, 9], (2, 1), 300),
            ([], (1, 2), 99),
        ]
        for ids, pair, new_id in cases:
            before = list(ids)
            got = f(ids, pair, new_id)
            if ids != before:
                raise CheckFailure(
                    "merge changed the list it was given; build and return a new list"
                )
            compare_values(
                got,
                ref.merge(ids, pair, new_id),
                what=f"merge({ids}, {pair}, {new_id})",
                likely_bugs=[
                    (
                        "only the first occurrence is replaced; replace every one",
                        _merge_first_only(ids, pair, new_id),
                    ),
                    (
                        "after a match, skip both ids (i += 2), so the second half is not reused",
                        _merge_no_skip(ids, pair, new_id),
                    ),
                    (
                        "the last id is dropped: when the loop ends, keep the id it has not looked at",
                        _merge_drops_last(ids, pair, new_id),
                    ),
                ],
            )

    return run_check("merge", merge, ref.merge, test, hint=hint)


# --- the training loop ------------------------------------------------------------------


def check_train(train: Callable[[list[int], int], dict[Pair, int]], hint: int = 1):
    """Check ``train(ids, num_merges) -> {pair: new_id}``: each merge must be a most
    frequent pair at its step (any tie rule is fine) and new ids count up from 256."""

    def test(f):
        text = "aaabdaaabac, the theme then thee, " * 2 + "éé"
        ids = list(text.encode("utf-8"))
        num_merges = 8
        merges = _dict_of(f(list(ids), num_merges), "train's result")
        if len(merges) != num_merges:
            hint = ""
            if len(merges) < num_merges:
                hint = (
                    ". Likely bug: the same pair won again and overwrote its dict entry; apply "
                    "each merge to ids (ids = merge(ids, pair, new_id)) before counting again"
                )
            raise CheckFailure(
                f"train(ids, {num_merges}) returned {len(merges)} merges, expected {num_merges}{hint}"
            )
        new_ids = list(merges.values())
        if new_ids != list(range(256, 256 + num_merges)):
            hint = ""
            if new_ids and new_ids[0] < 256:
                hint = " Ids 0-255 are the bytes; the first new token is 256."
            raise CheckFailure(f"the new ids are {new_ids}, expected 256, 257, ... in order.{hint}")
        current = list(ids)
        for step, (pair, new_id) in enumerate(merges.items()):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise CheckFailure(
                    f"merge {step}'s key is {pair!r}; keys should be (id, id) tuples"
                )
            counts = ref.count_pairs(current)
            if pair not in counts:
                raise CheckFailure(
                    f"merge {step} is {pair}, which no longer occurs at that step. Likely bug: "
                    "apply each merge to ids (ids = merge(ids, pair, new_id)) before counting again"
                )
            best = max(counts.values())
            if counts[pair] != best:
                least = (
                    " (that is the least frequent: use max, not min)"
                    if counts[pair] == min(counts.values())
                    else ""
                )
                raise CheckFailure(
                    f"merge {step} is {pair}, which occurs {counts[pair]} times, but the most "
                    f"frequent pair then occurs {best} times{least}"
                )
            current = ref.merge(current, pair, new_id)

    return run_check("train", train, ref.train_merges, test, hint=hint)


# --- encode and decode ------------------------------------------------------------------

_SAMPLE = "the theme then thee, they thought; thirty thin thistles. héé héé"


def _sample_merges() -> dict[Pair, int]:
    return ref.train_merges(list(_SAMPLE.encode("utf-8")), 24)


def _encode_latest_first(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = max(ref.count_pairs(ids), key=lambda p: merges.get(p, -1))
        if pair not in merges:
            break
        ids = ref.merge(ids, pair, merges[pair])
    return ids


def _encode_by_frequency(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        counts = ref.count_pairs(ids)
        candidates = [p for p in counts if p in merges]
        if not candidates:
            break
        pair = max(candidates, key=counts.get)
        ids = ref.merge(ids, pair, merges[pair])
    return ids


def check_encode(encode: Callable[[str, dict[Pair, int]], list[int]], hint: int = 1):
    """Check ``encode(text, merges) -> ids`` against the reference."""

    def test(f):
        merges = _sample_merges()
        for text in ["a", ""]:
            try:
                got = f(text, merges)
            except NotImplementedError:
                raise
            except Exception as e:
                raise CheckFailure(
                    f"encode({text!r}, merges) raised {type(e).__name__}: {e}. Stop the loop "
                    "when fewer than 2 ids are left (there is no pair to merge)"
                ) from None
            compare_values(got, ref.encode(text, merges), what=f"encode({text!r}, merges)")
        # Hand-made merges where the order matters: "bc" was learned before "ab".
        order_matters = {(98, 99): 256, (97, 98): 257, (256, 257): 258}
        cases = [(t, merges) for t in ["the theme", "thirty thistles then", "héé 漢 😀", "zzz"]]
        cases += [(t, order_matters) for t in ["abcab", "bcbcabc", "abc"]]
        for text, m in cases:
            compare_values(
                f(text, m),
                ref.encode(text, m),
                what=f"encode({text!r}, merges)",
                likely_bugs=[
                    (
                        "start from text.encode('utf-8') bytes, not ord() of each character",
                        [ord(c) for c in text],
                    ),
                    (
                        "merges apply in the order learned: pick the pair with the smallest merge id, not the largest",
                        _encode_latest_first(text, m),
                    ),
                    (
                        "pick the pair with the smallest merge id (the earliest learned), not the most frequent pair",
                        _encode_by_frequency(text, m),
                    ),
                ],
            )

    return run_check("encode", encode, ref.encode, test, hint=hint)


def _decode_each(ids, vocab):
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def check_decode(decode: Callable[[list[int], dict[int, bytes]], str], hint: int = 1):
    """Check ``decode(ids, vocab) -> str`` against the reference, partial UTF-8 included."""

    def test(f):
        merges = _sample_merges()
        vocab = ref.build_vocab(merges)
        split_char = [0xC3, 0xA9]  # "é" as two single-byte tokens
        cases = [
            ref.encode("the theme then", merges),
            ref.encode("héé 😀", merges),
            [104] + split_char,
            [],
        ]
        for ids in cases:
            got = f(list(ids), vocab)
            if isinstance(got, bytes | bytearray):
                raise CheckFailure(
                    "decode returned bytes; turn them into text with .decode('utf-8', errors='replace')"
                )
            compare_values(
                got,
                ref.decode(ids, vocab),
                what=f"decode({ids})",
                likely_bugs=[
                    (
                        "join all the bytes first, then decode once: a character's bytes can be split over two tokens",
                        _decode_each(ids, vocab),
                    ),
                ],
            )
        partial = [104, 0xF0, 0x9F]  # "h" and the first half of an emoji
        try:
            got = f(partial, vocab)
        except UnicodeDecodeError:
            raise CheckFailure(
                f"decode({partial}) raised UnicodeDecodeError: ids can end in the middle of a "
                "character (a model can generate that); use .decode('utf-8', errors='replace')"
            ) from None
        compare_values(got, ref.decode(partial, vocab), what=f"decode({partial})")

    return run_check("decode", decode, ref.decode, test, hint=hint)
