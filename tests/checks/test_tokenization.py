"""The tokenizer checks (notebook 01): typical wrong solutions named, other right ones pass."""

from collections import Counter

import pytest

from gpt2course import checks
from gpt2course.tokenizer import basic

from .conftest import assert_right, assert_stub, assert_wrong, run

# --- count_pairs ---------------------------------------------------------------------------


def cp_last_missing(ids):
    return dict(Counter(zip(ids[:-1], ids[1:-1], strict=False)))


def cp_once_each(ids):
    return {pair: 1 for pair in zip(ids, ids[1:], strict=False)}


def cp_step_two(ids):
    counts = {}
    for i in range(0, len(ids) - 1, 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def cp_sum_keys(ids):
    counts = {}
    for a, b in zip(ids, ids[1:], strict=False):
        counts[a + b] = counts.get(a + b, 0) + 1
    return counts


def cp_pops_the_input(ids):
    counts = {}
    while len(ids) > 1:
        a = ids.pop(0)
        counts[(a, ids[0])] = counts.get((a, ids[0]), 0) + 1
    return counts


def cp_most_common_list(ids):
    return Counter(zip(ids, ids[1:], strict=False)).most_common()


def cp_by_digits(ids):  # pairs of digits: right while every id is below 10
    s = "".join(map(str, ids))
    return dict(Counter((int(a), int(b)) for a, b in zip(s, s[1:], strict=False)))


# --- merge ---------------------------------------------------------------------------------


def mg_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return ids[:]


def mg_no_skip(ids, pair, new_id):
    return [new_id if (ids[i], ids[i + 1]) == pair else ids[i] for i in range(len(ids) - 1)]


def mg_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def mg_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def mg_string(ids, pair, new_id):
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


def mg_tuple(ids, pair, new_id):
    return tuple(basic.merge(ids, pair, new_id))


# --- train ---------------------------------------------------------------------------------


def tr_no_update(ids, num_merges):
    counts = basic.count_pairs(ids)
    top = sorted(counts, key=counts.get, reverse=True)[:num_merges]
    return {p: 256 + k for k, p in enumerate(top)}


def tr_from_zero(ids, num_merges):
    merges = {}
    for k in range(num_merges):
        counts = basic.count_pairs(ids)
        pair = max(counts, key=counts.get)
        ids = basic.merge(ids, pair, k)
        merges[pair] = k
    return merges


def tr_min(ids, num_merges):
    merges = {}
    for k in range(num_merges):
        counts = basic.count_pairs(ids)
        pair = min(counts, key=counts.get)
        ids = basic.merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges


def tr_same_pair(ids, num_merges):
    merges = {}
    for k in range(num_merges):
        counts = basic.count_pairs(ids)
        pair = max(counts, key=counts.get)
        basic.merge(ids, pair, 256 + k)  # the result is dropped
        merges[pair] = 256 + k
    return merges


def tr_one_new_id(ids, num_merges):
    merges = {}
    for _ in range(num_merges):
        counts = basic.count_pairs(ids)
        pair = max(counts, key=counts.get)
        ids = basic.merge(ids, pair, 256)
        merges[pair] = 256
    return merges


def tr_in_place(ids, num_merges):
    merges = {}
    for k in range(num_merges):
        counts = basic.count_pairs(ids)
        pair = max(counts, key=counts.get)
        ids[:] = basic.merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges


def tr_list(ids, num_merges):
    return list(basic.train_merges(ids, num_merges).items())


def tr_counter(ids, num_merges):  # right: another tie rule, written with Counter
    merges = {}
    for k in range(num_merges):
        (pair, _), *_ = Counter(zip(ids, ids[1:], strict=False)).most_common(1)
        ids = basic.merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges


# --- encode --------------------------------------------------------------------------------


def en_ord(text, merges):
    ids = [ord(c) for c in text]
    for pair, new_id in merges.items():
        ids = basic.merge(ids, pair, new_id)
    return ids


def en_latest_first(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = max(basic.count_pairs(ids), key=lambda p: merges.get(p, -1))
        if pair not in merges:
            break
        ids = basic.merge(ids, pair, merges[pair])
    return ids


def en_by_frequency(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        counts = basic.count_pairs(ids)
        known = [p for p in counts if p in merges]
        if not known:
            break
        ids = basic.merge(ids, max(known, key=counts.get), merges[max(known, key=counts.get)])
    return ids


def en_no_stop(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(basic.count_pairs(ids), key=lambda p: merges.get(p, float("inf")))
        ids = basic.merge(ids, pair, merges[pair])
    return ids


def en_no_short_guard(text, merges):
    ids = list(text.encode("utf-8"))
    while True:
        pair = min(basic.count_pairs(ids), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            return ids
        ids = basic.merge(ids, pair, merges[pair])


def en_pops_merges(text, merges):
    ids = list(text.encode("utf-8"))
    while merges:
        pair, new_id = next(iter(merges.items()))
        ids = basic.merge(ids, pair, new_id)
        merges.pop(pair)
    return ids


def en_in_order(text, merges):  # right: one pass over the merges in the order learned
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = basic.merge(ids, pair, new_id)
    return ids


# --- decode --------------------------------------------------------------------------------


def de_each(ids, vocab):
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def de_strict(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8")


def de_bytes(ids, vocab):
    return b"".join(vocab[i] for i in ids)


def de_latin1(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("latin-1")


def de_chr(ids, vocab):
    return "".join(chr(i) for i in ids)


def de_ignore(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")


def de_bytearray(ids, vocab):  # right
    buf = bytearray()
    for i in ids:
        buf += vocab[i]
    return buf.decode("utf-8", errors="replace")


WRONG = [
    (checks.check_count_pairs, cp_last_missing, "the last pair is missing"),
    (checks.check_count_pairs, cp_once_each, "each pair counts once"),
    (checks.check_count_pairs, cp_step_two, "pairs overlap"),
    (checks.check_count_pairs, cp_sum_keys, "each key is a pair"),
    (checks.check_count_pairs, cp_pops_the_input, "changed its input `ids` in place"),
    (checks.check_count_pairs, cp_most_common_list, "should be a dict"),
    (checks.check_count_pairs, cp_by_digits, "the pairs are of digits"),
    (checks.check_merge, mg_first_only, "only the first occurrence"),
    (checks.check_merge, mg_no_skip, "skip both ids"),
    (checks.check_merge, mg_drops_last, "the last id is dropped"),
    (checks.check_merge, mg_in_place, "changed its input `ids` in place"),
    (checks.check_merge, mg_string, "matches inside larger numbers"),
    (checks.check_merge, mg_tuple, "(a tuple, expected a list)"),
    (checks.check_train_merges, tr_no_update, "apply each merge to ids"),
    (checks.check_train_merges, tr_from_zero, "the first new token is 256"),
    (checks.check_train_merges, tr_min, "use max, not min"),
    (checks.check_train_merges, tr_same_pair, "the same pair won again"),
    (checks.check_train_merges, tr_one_new_id, "the k-th merge gets 256 + k"),
    (checks.check_train_merges, tr_in_place, "changed its input `ids` in place"),
    (checks.check_train_merges, tr_list, "should be a dict"),
    (checks.check_encode, en_ord, "text.encode('utf-8')"),
    (checks.check_encode, en_latest_first, "not the largest"),
    (checks.check_encode, en_by_frequency, "not the most frequent pair"),
    (checks.check_encode, en_no_stop, "stop the loop"),
    (checks.check_encode, en_no_short_guard, "fewer than 2 ids"),
    (checks.check_encode, en_pops_merges, "changed its input `merges` in place"),
    (checks.check_decode, de_each, "join all the bytes first"),
    (checks.check_decode, de_strict, "errors='replace'"),
    (checks.check_decode, de_bytes, "decode returned bytes"),
    (checks.check_decode, de_latin1, "Latin-1"),
    (checks.check_decode, de_chr, "look each id up in vocab"),
    (checks.check_decode, de_ignore, "errors='ignore' drops"),
]


@pytest.mark.parametrize("check, wrong, expect", WRONG, ids=[w.__name__ for _, w, _ in WRONG])
def test_wrong_solutions_are_named(check, wrong, expect):
    assert_wrong(check, wrong, expect)


RIGHT = [
    (checks.check_count_pairs, lambda ids: Counter(zip(ids, ids[1:], strict=False))),
    (checks.check_merge, lambda ids, p, n: basic.merge(list(ids), p, n)),
    (checks.check_train_merges, tr_counter),
    (checks.check_encode, en_in_order),
    (checks.check_decode, de_bytearray),
]


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize(
    "check",
    [checks.check_count_pairs, checks.check_merge, checks.check_train_merges,
     checks.check_encode, checks.check_decode],
)  # fmt: skip
def test_stub_is_not_done_yet(check):
    def stub(*args):
        raise NotImplementedError

    assert_stub(check, stub)


@pytest.mark.parametrize(
    ("check", "level2", "level3"),
    [
        (checks.check_count_pairs, "zip(ids, ids[1:])", "counts.get(pair, 0)"),
        (checks.check_merge, "while loop", "step by 2"),
        (checks.check_train_merges, "max(counts, key=counts.get)", "before counting again"),
        (checks.check_encode, "smallest id in merges", "if it is not in merges, stop"),
    ],
)
def test_the_hints_that_were_the_answer_come_from_the_check_on_request(check, level2, level3):
    # The notebook's # HINT: names the step; the recipe is in the check's levels 2 and 3.
    def stub(*args):
        raise NotImplementedError

    _, out = run(check, stub)
    assert "hint=2" in out and level2 not in out and level3 not in out
    _, out = run(check, stub, hint=2)
    assert level2 in out and level3 not in out
    _, out = run(check, stub, hint=3)
    assert level3 in out
