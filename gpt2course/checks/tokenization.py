"""Checks for the tokenization exercises: pair counting, one merge, the training loop,
encode and decode (notebook 01)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from ..tokenizer import basic as ref
from ._core import CheckFailure, call, check, compare_value_cases, compare_values

__all__ = [
    "check_count_pairs",
    "check_merge",
    "check_train_merges",
    "check_encode",
    "check_decode",
]

Pair = tuple[int, int]


def _dict_of(got: object, what: str) -> dict:
    if not isinstance(got, dict):
        raise CheckFailure(
            f"{what} should be a dict mapping (id, id) pairs to ints, got {type(got).__name__}"
        )
    return got


@check(
    "count_pairs",
    ref.count_pairs,
    hints=(
        "zip(ids, ids[1:]) walks the adjacent pairs, each the tuple (ids[i], ids[i + 1]).",
        "counts.get(pair, 0) is a pair's count so far (0 the first time): add 1 and store it "
        "back under the pair.",
    ),
)
def check_count_pairs(f):
    """Check ``count_pairs(ids) -> {(a, b): count}`` against the reference."""
    # Ids above 9 too, so that tricks on the ids' digits do not pass.
    cases = [[5, 5, 5, 5, 1], [1, 2, 3, 1, 2], [7], [], list(b"hello hello"), [11, 2, 11, 2]]
    for ids in cases:
        got = _dict_of(call(f, list(ids), names=["ids"]), f"count_pairs({ids})")
        bad = next((k for k in got if not (isinstance(k, tuple) and len(k) == 2)), None)
        if bad is not None:
            raise CheckFailure(
                f"count_pairs({ids}) has the key {bad!r}; each key is a pair, the tuple "
                "(ids[i], ids[i + 1]), so that merge() can look it up"
            )
        compare_values(
            dict(got),
            ref.count_pairs(ids),
            what=f"count_pairs({ids})",
            likely_bugs=[
                (
                    "the last pair is missing: pairwise(ids) reaches the end",
                    ref.count_pairs(ids[:-1]),
                ),
                (
                    "pairs overlap: in [5, 5, 5] the pair (5, 5) occurs twice",
                    dict(Counter(zip(ids[::2], ids[1::2], strict=False))),
                ),
                (
                    "each pair counts once: add 1 every time it occurs",
                    dict.fromkeys(pairwise(ids), 1),
                ),
                (
                    "the pairs are of digits, not of ids: ids go up to 255 (and beyond "
                    "after merges), so work on the list, not on its text",
                    ref.count_pairs([int(c) for c in "".join(map(str, ids))]),
                ),
            ],
        )


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


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


def _merge_by_string(ids, pair, new_id):
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


@check(
    "merge",
    ref.merge,
    hints=(
        "A while loop over an index i can step by 1 or by 2; a for loop cannot skip.",
        "At i, a match means i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair: then append "
        "new_id and step by 2, else append ids[i] and step by 1.",
    ),
)
def check_merge(f):
    """Check ``merge(ids, pair, new_id) -> new ids`` against the reference."""
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 99),
        ([1, 2, 3], (1, 2), 99),
        ([3, 1, 2], (1, 2), 99),
        ([5, 5, 5], (5, 5), 256),
        ([5, 5, 5, 5], (5, 5), 256),
        ([4, 1, 2, 1, 2, 9], (2, 1), 300),
        ([], (1, 2), 99),
        ([11, 2, 1, 21, 2, 1, 2], (1, 2), 256),  # "1 2" also occurs inside "11 2" and "21 2"
    ]
    for ids, pair, new_id in cases:
        got = call(f, list(ids), pair, new_id, names=["ids", "pair", "new_id"])
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
                    [new_id if p == pair else p[0] for p in pairwise(ids)],
                ),
                (
                    "the last id is dropped: when the loop ends, keep the id it has not looked at",
                    _merge_drops_last(ids, pair, new_id),
                ),
                (
                    "a string replace on the ids also matches inside larger numbers "
                    "('1 2' inside '11 2'); walk the list and compare whole ids",
                    _merge_by_string(ids, pair, new_id),
                ),
            ],
        )


@check(
    "train",
    ref.train_merges,
    hints=(
        "The most frequent pair is max(counts, key=counts.get); the k-th merge (k from 0) "
        "gets the id 256 + k.",
        "One round per merge: counts = count_pairs(ids), pick the pair, record "
        "merges[pair] = new_id, then ids = merge(ids, pair, new_id) before counting again.",
    ),
)
def check_train_merges(f):
    """Check the BPE trainer ``train(ids, num_merges) -> {pair: new_id}``: each merge must be
    a most frequent pair at its step (any tie rule is fine) and new ids count up from 256."""
    text = "aaabdaaabac, the theme then thee, " * 2 + "éé"
    ids = list(text.encode("utf-8"))
    num_merges = 8
    merges = _dict_of(call(f, list(ids), num_merges, names=["ids"]), "train's result")
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
        elif len(set(new_ids)) < len(new_ids):
            hint = " Every merge needs its own new id: the k-th merge gets 256 + k."
        raise CheckFailure(f"the new ids are {new_ids}, expected 256, 257, ... in order.{hint}")
    current = list(ids)
    for step, (pair, new_id) in enumerate(merges.items()):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CheckFailure(f"merge {step}'s key is {pair!r}; keys should be (id, id) tuples")
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


# --- encode and decode ------------------------------------------------------------------

_SAMPLE = "the theme then thee, they thought; thirty thin thistles. héé héé"


def _sample_merges() -> dict[Pair, int]:
    return ref.train_merges(list(_SAMPLE.encode("utf-8")), 24)


def _encode_picking_max(text, merges, *, by_count):
    """Encode merging first the learned pair with the largest id (or count): a wrong rule."""
    ids = list(text.encode("utf-8"))
    while pairs := [p for p in ref.count_pairs(ids) if p in merges]:
        pair = max(pairs, key=ref.count_pairs(ids).get if by_count else merges.get)
        ids = ref.merge(ids, pair, merges[pair])
    return ids


@check(
    "encode",
    ref.encode,
    hints=(
        "The pair learned first has the smallest id in merges; a pair never learned can "
        "rank last as float('inf'): min(pairs, key=lambda p: merges.get(p, float('inf'))).",
        "Loop while 2 or more ids remain: pick that pair from count_pairs(ids); if it is not "
        "in merges, stop; else ids = merge(ids, pair, merges[pair]).",
    ),
    crash_meanings=[
        (
            r"^KeyError",
            "the pair picked is not a learned merge; when even the best pair is not in "
            "merges, nothing more can be merged: stop the loop",
        )
    ],
)
def check_encode(f):
    """Check ``encode(text, merges) -> ids`` against the reference."""
    merges = _sample_merges()
    for text in ["a", ""]:
        try:
            got = call(f, text, merges, names=["text", "merges"])
        except (NotImplementedError, CheckFailure):
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
    outs = [call(f, text, m, names=["text", "merges"]) for text, m in cases]
    compare_value_cases(
        outs,
        [ref.encode(text, m) for text, m in cases],
        [f"encode({text!r}, merges)" for text, _ in cases],
        likely_bugs=[
            (
                "start from text.encode('utf-8') bytes, not ord() of each character",
                [[ord(c) for c in text] for text, _ in cases],
            ),
            (
                "merges apply in the order learned: pick the pair with the smallest "
                "merge id, not the largest",
                [_encode_picking_max(text, m, by_count=False) for text, m in cases],
            ),
            (
                "pick the pair with the smallest merge id (the earliest learned), not the "
                "most frequent pair",
                [_encode_picking_max(text, m, by_count=True) for text, m in cases],
            ),
        ],
    )


def _decode_as(ids, vocab, encoding="utf-8", errors="replace"):
    return b"".join(vocab[i] for i in ids).decode(encoding, errors=errors)


@check("decode", ref.decode)
def check_decode(f):
    """Check ``decode(ids, vocab) -> str`` against the reference, partial UTF-8 included."""
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
        got = call(f, list(ids), vocab, names=["ids", "vocab"])
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
                    "".join(vocab[i].decode("utf-8", errors="replace") for i in ids),
                ),
                (
                    "the bytes are decoded as Latin-1; GPT-2's bytes are UTF-8",
                    _decode_as(ids, vocab, "latin-1"),
                ),
                (
                    "chr(id) is not the token's text: look each id up in vocab (ids above "
                    "255 are merged tokens), join the bytes, then decode",
                    "".join(map(chr, ids)),
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
    compare_values(
        got,
        ref.decode(partial, vocab),
        what=f"decode({partial})",
        likely_bugs=[
            (
                "errors='ignore' drops the broken character silently; errors='replace' "
                "shows it as \ufffd, so the learner (and you) see that something was cut",
                _decode_as(partial, vocab, errors="ignore"),
            ),
        ],
    )
