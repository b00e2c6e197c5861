"""A fast byte-level BPE tokenizer: ``BPETokenizer`` (encode, decode, save, load) and
``train_bpe``, which learns merges with incremental pair counts.

Text is first cut into chunks by a regex (GPT-2's by default) so that merges never cross
a word boundary; each chunk is then encoded on its own, which is why a cache of encoded
chunks makes encoding fast: most words repeat.
"""

from __future__ import annotations

import heapq
import json
import operator
import warnings
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Literal

import regex

from .basic import merge

# GPT-2's pre-split, as in OpenAI's encoder.py: contractions, letters with an optional
# leading space, digits with an optional leading space, other symbols with an optional
# leading space, then whitespace (leaving the last space of a run to the next word).
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

FORMAT_HEADER = "gpt2course-bpe v1"
_LONG_CHUNK = 64  # bytes; longer chunks take the heap-based path (see _encode_long)
_CACHE_MAX = 200_000  # encoded chunks kept; cleared when full so memory stays bounded
_HOLD_MAX = 100_000  # characters; a tail this long is encoded even if more text may follow
_SETTLE_AT = 1 << 14  # characters gathered before a cut is looked for
_SPACE = regex.compile(r"\s")
_WORD_END = regex.compile(r"(?r)\S(?=\s)")  # searched from the end backwards


def settled_texts(chunks: Iterable[str], split: regex.Pattern) -> Iterator[str]:
    """The text of ``chunks`` again, cut only where ``split``'s pre-tokens cannot change
    whatever text follows: each piece then encodes to the ids it has in the whole text.

    The last two pre-tokens of what has arrived are held back, and any whitespace before
    them. The last may grow ("hel" + "lo"), a run of whitespace at the end gives its last
    space to a word that follows (``\\s+(?!\\S)``: "a  " then "b" is "a", " ", " b"), and
    the one before may change too ("'" then "ll" is the contraction "'ll"). A pre-token
    starts where the previous one ended, so nothing before those depends on what comes
    next. Held-back text longer than 100,000 characters (one enormous word or run of
    spaces) is let go as it is.
    """
    held = ""
    for chunk in chunks:
        _check_text(chunk, "encode_iterable")
        held += chunk
        if len(held) < _SETTLE_AT:
            continue  # a few lines at a time would cost a scan and an encode call each
        # The pre-tokens are found from a boundary near the end, not from the start of held:
        # a non-space followed by a space is always one (a pre-token holding a space is all
        # spaces or starts with one), and three of them leave at least two pre-tokens after.
        start = 0
        for k, m in enumerate(_WORD_END.finditer(held)):
            if k == 2:
                start = m.end()
                break
        before_last = last = start
        for m in split.finditer(held, start):
            before_last, last = last, m.start()
        # Cut after a non-space: "x\n\n" alone ends in the one token "\n\n", but before a
        # word its pre-tokens are "\n", "\n". No pre-token ends in a space and goes on past
        # it, so the end of the last non-space is always a boundary.
        cut = before_last
        while cut and _SPACE.match(held, cut - 1):  # regex's \s: str.isspace differs
            cut -= 1
        if len(held) - cut > _HOLD_MAX:
            cut = len(held)
        if cut:
            yield held[:cut]
            held = held[cut:]
    if held:
        yield held


def _check_text(text: object, what: str = "encode") -> None:
    if not isinstance(text, str):
        hint = (
            " (decode bytes first: data.decode('utf-8'))"
            if isinstance(text, bytes | bytearray)
            else ""
        )
        raise TypeError(f"{what}() expects a str, got {type(text).__name__}{hint}")


class BPETokenizer:
    """Byte-level BPE: text -> regex chunks -> UTF-8 bytes -> ids, merged by rank.

    ``merges`` maps each learned pair to its new id, in the order learned (the order is
    the priority when encoding). ``byte_ids[b]`` is the id of byte ``b``: ``range(256)``
    for tokenizers trained here, a permutation for GPT-2.
    """

    def __init__(
        self,
        merges: dict[tuple[int, int], int],
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: dict[str, int] | None = None,
        byte_ids: Iterable[int] | None = None,
    ):
        self.byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256:
            raise ValueError("byte_ids must give 256 distinct ids, one for each byte value")
        self.merges = {(int(a), int(b)): int(new) for (a, b), new in merges.items()}
        self.pattern = pattern
        self._split = regex.compile(pattern)
        self.special_tokens = dict(special_tokens or {})
        self.vocab = self._build_vocab()
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}
        self._special_re = {}  # frozenset of special tokens -> compiled alternation

    def _build_vocab(self) -> dict[int, bytes]:
        vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for (a, b), new in self.merges.items():
            if a not in vocab or b not in vocab:
                raise ValueError(
                    f"merge ({a}, {b}) -> {new} uses an id that no earlier merge made; "
                    "merges must be listed in the order they were learned"
                )
            if new in vocab:
                raise ValueError(f"merge ({a}, {b}) -> {new}: id {new} is already taken")
            vocab[new] = vocab[a] + vocab[b]
        for s, i in self.special_tokens.items():
            if i in vocab:
                raise ValueError(f"special token {s!r} -> {i}: id {i} is already taken")
            vocab[i] = s.encode("utf-8")
        return vocab

    @property
    def n_vocab(self) -> int:
        """One more than the largest id: the size of an embedding table for these ids."""
        return max(self.vocab) + 1

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_vocab={self.n_vocab}, merges={len(self.merges)}, "
            f"special_tokens={len(self.special_tokens)})"
        )

    def _encode_chunk(self, data: bytes) -> list[int]:
        byte_ids, ranks, merges = self.byte_ids, self._ranks, self.merges
        ids = [byte_ids[b] for b in data]
        if len(ids) > _LONG_CHUNK:
            return self._encode_long(ids)
        while len(ids) >= 2:
            # The earliest-learned merge first: later merges were learned on its output.
            pair = min(pairwise(ids), key=lambda p: ranks.get(p, 1 << 62))
            if pair not in ranks:
                break
            ids = merge(ids, pair, merges[pair])
        return ids

    def _encode_long(self, ids: list[int]) -> list[int]:
        """The same merges as ``_encode_chunk`` in O(n log n), for long chunks.

        Rescanning a chunk for its best pair after every merge is quadratic: a 20,000-letter
        chunk (a DNA string, a long hash) would take seconds. Instead keep the ids as a linked
        list and the mergeable pairs in a heap keyed by (rank, position). A merge only creates
        pairs with the new token, whose ranks are larger than the current one, so popping the
        heap replays exactly "lowest rank first, leftmost occurrence first".
        """
        ranks, merges = self._ranks, self.merges
        n = len(ids)
        tok = list(ids)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = [(ranks[p], i) for i, p in enumerate(pairwise(tok)) if p in ranks]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i] if alive[i] else -1
            if j == -1 or ranks.get((tok[i], tok[j])) != rank:
                continue  # stale: one of its ids was merged away since it was pushed
            tok[i] = merges[(tok[i], tok[j])]
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] != -1:
                prv[nxt[j]] = i
            for a in (prv[i], i):
                if a != -1 and nxt[a] != -1:
                    r = ranks.get((tok[a], tok[nxt[a]]))
                    if r is not None:
                        heapq.heappush(heap, (r, a))
        return [t for t, keep in zip(tok, alive, strict=True) if keep]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text``, treating special-token text like any other text."""
        _check_text(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates cannot be UTF-8; like tiktoken, replace them with U+FFFD.
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        out: list[int] = []
        cache = self._cache
        for chunk in self._split.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[chunk] = ids
            out.extend(ids)
        return out

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """``encode_ordinary`` of the text that ``chunks`` (strings: a file object gives its
        lines) make together, id by id as the text arrives, in memory that does not grow
        with the text: the ids are those of the whole text, however it is split."""
        for text in settled_texts(chunks, self._split):
            yield from self.encode_ordinary(text)

    def _special_regex(self, tokens: Collection[str]):
        key = frozenset(tokens)
        if key not in self._special_re:
            # Longest first, so that one special token that prefixes another loses.
            alts = sorted(key, key=len, reverse=True)
            self._special_re[key] = regex.compile("|".join(regex.escape(t) for t in alts))
        return self._special_re[key]

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode ``text`` to ids; special tokens as tiktoken does it.

        Special-token text in ``allowed_special`` becomes its special id; found text of a
        token in ``disallowed_special`` (by default every special token not allowed)
        raises ``ValueError``, because text from users must not forge control tokens.
        """
        _check_text(text)
        for name, value in (
            ("allowed_special", allowed_special),
            ("disallowed_special", disallowed_special),
        ):
            if isinstance(value, str) and value != "all":
                raise TypeError(
                    f"{name} must be 'all' or a set of strings, got the string {value!r}; "
                    f"did you mean {name}={{{value!r}}}?"
                )
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        # Like tiktoken, allowing a token this tokenizer lacks is harmless: it is ignored,
        # so the same call works for tokenizers with and without <|endoftext|>.
        allowed &= set(self.special_tokens)
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = set(disallowed_special)
        if disallowed:
            m = self._special_regex(disallowed).search(text)
            if m:
                token = m.group()
                raise ValueError(
                    f"Encountered text corresponding to disallowed special token {token!r}.\n"
                    f"If you want this text to be encoded as a special token, pass it to "
                    f"`allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
                    f"If you want this text to be encoded as normal text, disable the check "
                    f"for this token by passing `disallowed_special=(enc.special_tokens_set - "
                    f"{{{token!r}}})`.\n"
                    f"To disable this check for all special tokens, pass `disallowed_special=()`.\n"
                )
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for m in self._special_regex(allowed).finditer(text):
            out += self.encode_ordinary(text[start : m.start()])
            out.append(self.special_tokens[m.group()])
            start = m.end()
        out += self.encode_ordinary(text[start:])
        return out

    @property
    def special_tokens_set(self) -> set[str]:
        """The special tokens' texts (as tiktoken names it)."""
        return set(self.special_tokens)

    def _as_id_list(self, ids: Iterable[int]) -> list[int]:
        if hasattr(ids, "tolist"):  # a tensor or numpy array
            ids = ids.tolist()
        if isinstance(ids, str | bytes):
            raise TypeError(f"decode() expects a sequence of int ids, got {type(ids).__name__}")
        out = []
        for i in ids:
            if isinstance(i, list):
                raise TypeError(
                    "decode() takes one sequence of ids, got a nested list (a batch?); "
                    "decode each row on its own"
                )
            try:
                i = operator.index(i)
            except TypeError:
                raise TypeError(
                    f"token ids must be integers, got {type(i).__name__} {i!r}"
                ) from None
            if i not in self.vocab:
                if 0 <= i < self.n_vocab:
                    raise ValueError(f"token id {i} is not in this tokenizer's vocabulary")
                raise ValueError(
                    f"token id {i} is out of range: this tokenizer's ids go from 0 to "
                    f"{self.n_vocab - 1}. Were these ids made by another tokenizer or model?"
                )
            out.append(i)
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that ``ids`` stand for."""
        vocab = self.vocab
        try:
            return b"".join([vocab[i] for i in ids])
        except (KeyError, TypeError):
            # The fast path failed: find the offending id and say what is wrong with it.
            return b"".join([vocab[i] for i in self._as_id_list(ids)])

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. Never fails on partial UTF-8: broken bytes become U+FFFD (�)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character)."""
        return self.decode_bytes([token])

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as a small text file: a header line, a JSON line, one merge per line."""
        path = Path(path)
        meta: dict = {"pattern": self.pattern, "special_tokens": self.special_tokens}
        if self.byte_ids != list(range(256)):
            meta["byte_ids"] = self.byte_ids
        lines = [FORMAT_HEADER, json.dumps(meta, ensure_ascii=False)]
        lines += [f"{a} {b} {new}" for (a, b), new in self.merges.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by ``save``."""
        path = Path(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0] != FORMAT_HEADER:
            raise ValueError(
                f"{path} is not a tokenizer saved by BPETokenizer.save "
                f"(its first line should be {FORMAT_HEADER!r})"
            )
        n = 2
        try:
            meta = json.loads(lines[1])
            merges = {}
            for n, line in enumerate(lines[2:], start=3):  # noqa: B007 (n names the bad line)
                if line.strip():
                    a, b, new = (int(x) for x in line.split())
                    merges[(a, b)] = new
        except (IndexError, ValueError) as e:
            raise ValueError(f"{path} is damaged at line {n}: {e}") from None
        return cls(merges, meta["pattern"], meta.get("special_tokens"), meta.get("byte_ids"))


def train_bpe(
    text: str,
    vocab_size: int,
    pattern: str = GPT2_SPLIT_PATTERN,
    special_tokens: Sequence[str] = (),
) -> BPETokenizer:
    """Learn ``vocab_size - 256 - len(special_tokens)`` merges on ``text``; ties go to the
    smallest pair.

    ``special_tokens`` (e.g. ``["<|endoftext|>"]``) are cut out of the text before the
    pre-split, so no merge crosses or enters them, and take the last ids, as GPT-2's
    ``<|endoftext|>`` is 50256. ``encode`` reads them only where ``allowed_special`` says.
    Pair counts live over the unique chunks (each weighted by how often it occurs) and each
    merge updates only the counts of the chunks it touches; a heap finds the top pair.
    """
    _check_text(text, "train_bpe")
    if isinstance(special_tokens, str):
        raise TypeError(
            f"special_tokens is a list of strings, got the string {special_tokens!r}; "
            f"did you mean special_tokens=[{special_tokens!r}]?"
        )
    special = list(special_tokens)
    if not all(isinstance(t, str) and t for t in special) or len(set(special)) != len(special):
        raise ValueError(f"special_tokens must be distinct non-empty strings, got {special!r}")
    if not isinstance(vocab_size, int) or vocab_size < 256 + len(special):
        raise ValueError(
            f"vocab_size must be an int >= {256 + len(special)} (the 256 bytes come first, "
            f"then the merges, then {len(special)} special token(s)), got {vocab_size!r}"
        )
    pieces = [text]
    if special:  # longest first, so that one special token that prefixes another loses
        alts = sorted(special, key=len, reverse=True)
        pieces = regex.split("|".join(regex.escape(t) for t in alts), text)
    chunk_counts = Counter(c for piece in pieces for c in regex.findall(pattern, piece))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that may hold it
    for i, (w, f) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(w):
            pair_counts[pair] += f
            where[pair].add(i)
    # Max-heap by count via negation; entries go stale when counts change, so each pop is
    # checked against pair_counts ("lazy deletion") instead of searching the heap.
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(256, vocab_size - len(special)):
        while heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair) == -neg:
                break
        else:
            warnings.warn(
                f"train_bpe: the text ran out of pairs after {len(merges)} merges; "
                f"the vocabulary has {256 + len(merges) + len(special)} tokens, not {vocab_size}",
                stacklevel=2,
            )
            break
        merges[pair] = new_id
        delta: dict[tuple[int, int], int] = defaultdict(int)
        for i in where.pop(pair):
            w = words[i]
            new = merge(w, pair, new_id)
            if len(new) == len(w):
                continue  # a stale entry: an earlier merge already used this pair up
            f = freqs[i]
            for p in pairwise(w):
                delta[p] -= f
            for p in pairwise(new):
                delta[p] += f
                where[p].add(i)
            words[i] = new
        for p, d in delta.items():
            if d == 0:
                continue
            c = pair_counts[p] + d
            if c > 0:
                pair_counts[p] = c
                heapq.heappush(heap, (-c, p))
            else:
                del pair_counts[p]
        pair_counts.pop(pair, None)
    first = 256 + len(merges)  # right after the merges: no gap in the ids
    return BPETokenizer(merges, pattern, {t: first + k for k, t in enumerate(special)})
