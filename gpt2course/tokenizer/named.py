"""The one tokenizer protocol, and the two tokenizers training picks by name: raw UTF-8
bytes, or GPT-2's BPE."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import regex

from ..assets import tiktoken_gpt2
from .bpe import GPT2_SPLIT_PATTERN, settled_texts


class Tokenizer(Protocol):
    """What the package asks of a tokenizer: text to ids, ids to text, one id to its bytes.

    tiktoken's encodings, ``GPT2Tokenizer``, ``BPETokenizer`` and the two below all fit.
    """

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def decode_single_token_bytes(self, token: int) -> bytes: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, the tokenizer of part 6's byte-level models.

    Those models have no special end token, so a newline ends an answer (no answer in
    part 9's task set spans two lines). GPT-2's tokenizer has ``<|endoftext|>`` for this.
    """

    name = "bytes"
    vocab_size = 256
    eot_token = ord("\n")

    def encode(self, text: str) -> list[int]:
        """Text -> byte ids."""
        return list(text.encode("utf-8"))

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """The byte ids of the text ``chunks`` make together, chunk by chunk."""
        for chunk in chunks:
            yield from chunk.encode("utf-8")

    def decode(self, ids: Sequence[int]) -> str:
        """Byte ids -> text; broken UTF-8 becomes the replacement character."""
        return bytes(ids).decode("utf-8", errors="replace")

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The one byte that is token ``token``."""
        return bytes([token])


class TiktokenGPT2:
    """tiktoken's GPT-2 BPE (vocab 50257) that encodes long texts in pieces it can take."""

    name = "gpt2"

    def __init__(self) -> None:
        self.enc = tiktoken_gpt2()
        self.vocab_size, self.eot_token = self.enc.n_vocab, self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        """Text -> GPT-2 ids, tiktoken's own; special tokens are read as plain text."""
        return encode_in_pieces(self.enc.encode_ordinary, text)

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """``encode`` of the text that ``chunks`` (strings: a file object gives its lines) make
        together, yielded as the text arrives, in memory that does not grow with the text."""
        for text in settled_texts(chunks, _GPT2_SPLIT):
            yield from encode_in_pieces(self.enc.encode_ordinary, text)

    def decode(self, ids: Sequence[int]) -> str:
        """GPT-2 ids -> text."""
        return self.enc.decode(list(ids))

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token (part of a character, at times)."""
        return self.enc.decode_single_token_bytes(token)


# A lone newline between two non-spaces is a piece of its own for GPT-2's pre-tokenizer
# (its optional leading space is a literal space), so cutting after it changes no token;
# after a longer run it would ("\n\n" at a piece's end is one token, "\n" "\n" before text).
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")
_LONG_SPACE = 10_000  # tiktoken's regex overflows Rust's stack on ~1 MB of whitespace
_CHUNK = 100_000
_GPT2_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)  # tiktoken's "gpt2" pre-split, same matches


def encode_in_pieces(encode: Callable[[str], list[int]], text: str) -> list[int]:
    """``encode(text)`` done in pieces of about 100k characters cut where GPT-2's tokens
    cannot span, so that tiktoken never sees a huge run of whitespace: its regex crashes the
    whole process (a Rust stack overflow) on about 1 MB of it. The ids are tiktoken's own for
    any text whose whitespace runs are shorter than 10,000 characters; longer runs are cut
    every 10,000 characters (where the ids may differ from one giant space token sequence)."""
    if len(text) <= _CHUNK and not re.search(rf"\s{{{_LONG_SPACE}}}", text):
        return encode(text)
    chunks: list[list[str]] = [[]]
    size = 0
    for piece in _SAFE_CUT.split(text):
        for part in _cap_spaces(piece):
            if size + len(part) > _CHUNK:
                chunks.append([])
                size = 0
            chunks[-1].append(part)
            size += len(part)
            if len(part) >= _LONG_SPACE:  # a capped run is encoded on its own
                chunks.append([])
                size = 0
    return [i for chunk in chunks if chunk for i in encode("".join(chunk))]


def _cap_spaces(piece: str) -> list[str]:
    """``piece`` split so that no part holds a whitespace run longer than ``_LONG_SPACE``."""
    out = []
    # With a group in the pattern, re.split alternates: text, long run, text, long run, ...
    for k, part in enumerate(re.split(rf"(\s{{{_LONG_SPACE + 1},}})", piece)):
        if k % 2:
            out += [part[i : i + _LONG_SPACE] for i in range(0, len(part), _LONG_SPACE)]
        elif part:
            out.append(part)
    return out


def get_tokenizer(name: str) -> ByteTokenizer | TiktokenGPT2:
    """``"bytes"`` (UTF-8 bytes, vocab 256) or ``"gpt2"`` (tiktoken's GPT-2 BPE, vocab 50257)."""
    if name == "bytes":
        return ByteTokenizer()
    if name == "gpt2":
        return TiktokenGPT2()
    raise ValueError(f"unknown tokenizer {name!r}; choose 'bytes' or 'gpt2'")
