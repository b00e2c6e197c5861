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


@functools.lru_cache(maxsize=1)
def load_gpt2_tokenizer() -> GPT2Tokenizer:
    """GPT-2's tokenizer from the course cache (the files are downloaded once)."""
    from .. import assets

    return GPT2Tokenizer.from_files(assets.fetch("vocab.bpe"), assets.fetch("encoder.json"))
