"""The tokenizers training and generation pick by name: raw UTF-8 bytes, or GPT-2's BPE."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..assets import tiktoken_gpt2


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, the tokenizer of part 6's byte-level models.

    Those models have no special end token, so a newline ends an answer (no answer in
    part 9's task set spans two lines). GPT-2's tokenizer has ``<|endoftext|>`` for this.
    """

    name = "bytes"
    vocab_size = 256
    n_vocab = 256  # tiktoken's name for it
    eot_token = ord("\n")

    def encode(self, text: str) -> list[int]:
        """Text -> byte ids."""
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        """Byte ids -> text; broken UTF-8 becomes the replacement character."""
        return bytes(ids).decode("utf-8", errors="replace")


# Tokenizers and data


@dataclass(frozen=True)
class Tokenizer:
    """The two tokenizers training uses: raw UTF-8 bytes (256 ids) or GPT-2's BPE (50257)."""

    name: str
    vocab_size: int
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def get_tokenizer(name: str) -> Tokenizer:
    """``"bytes"`` (UTF-8 bytes, vocab 256) or ``"gpt2"`` (tiktoken's GPT-2 BPE, vocab 50257)."""
    if name == "bytes":
        return ByteTokenizer()
    if name == "gpt2":
        enc = tiktoken_gpt2()
        return Tokenizer("gpt2", enc.n_vocab, enc.encode_ordinary, enc.decode)
    raise ValueError(f"unknown tokenizer {name!r}; choose 'bytes' or 'gpt2'")
