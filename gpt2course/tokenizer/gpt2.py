"""GPT-2's own tokenizer, rebuilt on ``BPETokenizer`` from OpenAI's two files.

- ``vocab.bpe``: the 50,000 merges, in the order they were learned, one "a b" per line.
- ``encoder.json``: every token's id, 50,257 of them: 256 bytes, 50,000 merges, and
  ``<|endoftext|>`` (50256).

Both files write bytes as printable characters (``bytes_to_unicode``), so a space is
``Ġ`` and a newline ``Ċ``; that is why GPT-2 tokens print with a ``Ġ``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .bpe import GPT2_SPLIT_PATTERN, BPETokenizer

ENDOFTEXT = "<|endoftext|>"


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: printable bytes stand for themselves,
    the others (space, control bytes...) are shifted to characters from 256 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in printable]
    chars = printable + [256 + n for n in range(len(others))]
    return dict(zip(printable + others, map(chr, chars), strict=True))


class GPT2Tokenizer(BPETokenizer):
    """Our from-scratch encoder for GPT-2's vocabulary; gives tiktoken's "gpt2" ids."""

    @classmethod
    def from_files(cls, vocab_bpe: str | Path, encoder_json: str | Path) -> GPT2Tokenizer:
        """Build the tokenizer from OpenAI's ``vocab.bpe`` and ``encoder.json``."""
        encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].startswith("#version"):
            raise ValueError(
                f"{vocab_bpe} does not look like GPT-2's vocab.bpe (no '#version' line)"
            )
        byte_to_char = bytes_to_unicode()
        try:
            byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
            merges = {}
            for line in lines[1:]:
                if line:
                    a, b = line.split(" ")
                    merges[(encoder[a], encoder[b])] = encoder[a + b]
        except KeyError as e:
            raise ValueError(
                f"{vocab_bpe} and {encoder_json} do not belong together: token {e} is missing "
                "from encoder.json"
            ) from None
        special = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
        tok = cls(merges, GPT2_SPLIT_PATTERN, special, byte_ids)
        # Every token in encoder.json must spell the bytes its merges make.
        char_to_byte = {c: b for b, c in byte_to_char.items()}
        for s, i in encoder.items():
            if s not in special and bytes(char_to_byte[c] for c in s) != tok.vocab.get(i):
                raise ValueError(
                    f"encoder.json gives {s!r} the id {i}, which vocab.bpe builds differently"
                )
        return tok

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``, which GPT-2 saw between documents."""
        return self.special_tokens[ENDOFTEXT]

    def built_on(
        self,
        encode: Callable[[str, dict[tuple[int, int], int]], list[int]],
        decode: Callable[[list[int], dict[int, bytes]], str],
    ) -> GPT2Tokenizer:
        """This tokenizer with part 1's ``encode(text, merges)`` doing the byte pair encoding
        of each chunk and ``decode(ids, vocab)`` the decoding (yours, from the workbench).

        Part 1's ids start from the bytes' own values (0-255); GPT-2 numbers the 256 bytes in
        another order, so ``encode`` gets GPT-2's merges written with byte values, and its
        byte ids are renumbered after. The same ids as tiktoken's, if your functions are right.
        """
        return _BuiltOn(self, encode, decode)


class _BuiltOn(GPT2Tokenizer):
    """GPT-2's tokenizer whose chunks are encoded and decoded by part 1's functions."""

    def __init__(self, base: GPT2Tokenizer, encode: Callable, decode: Callable):
        self.__dict__.update(base.__dict__)
        self._cache = {}  # chunks encoded by these functions, not the base's
        self.bpe_encode, self.bpe_decode = encode, decode
        value = {i: b for b, i in enumerate(self.byte_ids)}  # GPT-2's byte id -> byte value
        self.byte_value_merges = {
            (value.get(a, a), value.get(b, b)): new for (a, b), new in self.merges.items()
        }

    def _encode_chunk(self, data: bytes) -> list[int]:
        ids = self.bpe_encode(data.decode("utf-8"), self.byte_value_merges)
        return [self.byte_ids[i] if i < 256 else i for i in ids]  # a byte's value -> its id

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, by part 1's ``decode`` with GPT-2's vocabulary."""
        return self.bpe_decode(self._as_id_list(ids), self.vocab)


@functools.lru_cache(maxsize=1)
def load_gpt2_tokenizer() -> GPT2Tokenizer:
    """GPT-2's tokenizer from the course cache (the files are downloaded once)."""
    from .. import assets

    return GPT2Tokenizer.from_files(assets.fetch("vocab.bpe"), assets.fetch("encoder.json"))
