"""Byte-level BPE in its plainest form: the functions the notebook's exercises rebuild.

Everything here works on one list of ids and recounts from scratch; ``bpe.train_bpe`` is
the fast trainer and ``bpe.BPETokenizer`` the fast encoder built from the same ideas.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise


def count_pairs(ids: Iterable[int]) -> dict[tuple[int, int], int]:
    """How often each adjacent pair of ids occurs, in order of first appearance."""
    counts: dict[tuple[int, int], int] = {}
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    out = []
    i = 0
    n = len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both halves are used up: (5, 5, 5) merges once, not twice
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(ids: list[int], num_merges: int) -> dict[tuple[int, int], int]:
    """Learn ``num_merges`` merges on one id sequence; ties go to the pair seen first."""
    ids = list(ids)
    merges: dict[tuple[int, int], int] = {}
    for i in range(num_merges):
        counts = count_pairs(ids)
        if not counts:
            break  # everything is one token already
        pair = max(counts, key=counts.get)
        new_id = 256 + i
        ids = merge(ids, pair, new_id)
        merges[pair] = new_id
    return merges


def build_vocab(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
    """The bytes each id stands for: the 256 single bytes, then one entry per merge."""
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():  # in merge order, so a and b already exist
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


def encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """Text -> UTF-8 bytes -> ids, applying the earliest-learned merge first."""
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        # Merges must replay in the order they were learned, since later merges are built
        # from the tokens earlier ones made: pick the pair with the smallest merge id.
        pair = min(count_pairs(ids), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def decode(ids: Iterable[int], vocab: dict[int, bytes]) -> str:
    """Ids -> bytes -> text; bytes that are not valid UTF-8 become U+FFFD (�)."""
    # Join first, decode once: one character's bytes may be split over two tokens.
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
