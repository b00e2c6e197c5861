"""Byte-level BPE from scratch, and GPT-2's tokenizer rebuilt on it.

- ``basic``: the plain functions the notebook rebuilds (count_pairs, merge, encode, decode).
- ``bpe``: ``BPETokenizer`` and the fast trainer ``train_bpe``.
- ``gpt2``: ``GPT2Tokenizer`` and ``load_gpt2_tokenizer`` (same ids as tiktoken's "gpt2").
"""

from .basic import build_vocab, count_pairs, merge, train_merges
from .bpe import GPT2_SPLIT_PATTERN, BPETokenizer, train_bpe
from .gpt2 import ENDOFTEXT, GPT2Tokenizer, bytes_to_unicode, load_gpt2_tokenizer

__all__ = [
    "BPETokenizer",
    "ENDOFTEXT",
    "GPT2Tokenizer",
    "GPT2_SPLIT_PATTERN",
    "build_vocab",
    "bytes_to_unicode",
    "count_pairs",
    "load_gpt2_tokenizer",
    "merge",
    "train_bpe",
    "train_merges",
]
