"""From text to training batches: token ids cut into (input, target) windows, and the
embedding sum that turns ids into vectors.

A window of ``context_length + 1`` consecutive ids gives one training example: the input
is its first ``context_length`` ids, the target the same ids shifted left by one, so that
position t is trained to predict token t + 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import assets
from .tokenizer.named import Tokenizer, encode_in_pieces

TEXTS = {"tinyshakespeare": "tinyshakespeare.txt"}


def load_text(name_or_path: str = "shakespeare") -> str:
    """A course text by name (``"tinyshakespeare"``, or ``"shakespeare"``) from the course
    cache, or the contents of a UTF-8 text file."""
    return text_file(name_or_path).read_text(encoding="utf-8")


def text_file(name_or_path: str) -> Path:
    """The file of a course text (fetched into the cache once) or of a path."""
    name = "tinyshakespeare" if name_or_path == "shakespeare" else name_or_path
    if name in TEXTS:
        return assets.fetch(TEXTS[name])
    p = Path(name_or_path)
    if not p.is_file():
        raise FileNotFoundError(
            f"unknown text {name_or_path!r}: not a text file, nor one of the course's texts "
            f"({', '.join(sorted(TEXTS))}, or 'shakespeare'); pass one of those or a file's path"
        )
    return p


def read_chunks(path: str | Path, size: int = 1 << 16) -> Iterator[str]:
    """A UTF-8 text file's text, ``size`` characters at a time (long lines cut too)."""
    with open(path, encoding="utf-8") as f:
        yield from iter(lambda: f.read(size), "")


def encode_text(name_or_path: str, tokenizer: Tokenizer) -> torch.Tensor:
    """The token ids of a course text, a UTF-8 text file, or a folder of ``.txt`` files (each
    one document, followed by the tokenizer's end-of-text token), as a 1-D LongTensor.

    Files are encoded as they are read (``tokenizer.encode_iterable``), so memory holds the
    ids, never the whole text; the ids are those of encoding each file at once.
    """
    p = Path(name_or_path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.txt") if f.is_file())
        if not files:
            raise FileNotFoundError(f"{p} is a folder with no .txt files; put your texts there")
    else:
        files = [text_file(name_or_path)]
    eot = getattr(tokenizer, "eot_token", None) if p.is_dir() else None

    def ids() -> Iterator[int]:
        for f in files:
            try:
                if hasattr(tokenizer, "encode_iterable"):
                    yield from tokenizer.encode_iterable(read_chunks(f))
                else:  # a tokenizer without one (tiktoken's own): the whole file at once
                    yield from encode_in_pieces(tokenizer.encode, f.read_text(encoding="utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{f} is not UTF-8 text ({e.reason}); save it as UTF-8 "
                    "or move it out of the folder"
                ) from None
            if eot is not None:
                yield eot

    return torch.from_numpy(np.fromiter(ids(), dtype=np.int64))


def _as_ids(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    t = ids.detach().cpu() if isinstance(ids, torch.Tensor) else torch.as_tensor(list(ids))
    if t.dim() != 1:
        raise ValueError(f"ids must be one flat sequence of token ids, got shape {tuple(t.shape)}")
    if t.numel() and (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"token ids must be integers, got {t.dtype}")
    return t.long()


def num_windows(n_ids: int, context_length: int, stride: int) -> int:
    """How many (input, target) windows fit in ``n_ids`` ids with the given stride."""
    if context_length < 1:
        raise ValueError(f"context_length must be at least 1, got {context_length}")
    if stride < 1:
        raise ValueError(
            f"stride must be at least 1, got {stride}; stride = context_length gives "
            "non-overlapping windows, a smaller stride overlapping ones"
        )
    if n_ids < context_length + 1:
        raise ValueError(
            f"{n_ids} token ids are too few for one window: a window needs context_length + 1 "
            f"= {context_length + 1} ids (the input and the one next token). Use more text or "
            "a smaller context_length."
        )
    # Window i starts at i * stride and needs ids up to i * stride + context_length.
    return (n_ids - context_length - 1) // stride + 1


def make_windows(
    ids: Sequence[int] | torch.Tensor, context_length: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows at once: inputs and targets, each (n_windows, context_length) LongTensor."""
    t = _as_ids(ids)
    num_windows(t.numel(), context_length, stride)  # refuses arguments that fit no window
    # Window i is t[i * stride : i * stride + context_length + 1]; clone: copies, not views.
    chunks = t.unfold(0, context_length + 1, stride).clone()  # (N, context_length + 1)
    return chunks[:, :-1], chunks[:, 1:]


class TokenWindowDataset(Dataset):
    """(input, target) windows over a token-id sequence; target is input shifted by one.

    Windows are cut on demand, so a stride of 1 over a million ids costs no extra memory.
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor, context_length: int, stride: int):
        self.ids = _as_ids(ids)
        self.context_length = context_length
        self.stride = stride
        self._n = num_windows(self.ids.numel(), context_length, stride)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"window {i} out of range: this dataset has {self._n} windows")
        start = i * self.stride
        chunk = self.ids[start : start + self.context_length + 1]
        return chunk[:-1], chunk[1:]  # (context_length,), (context_length,)

    def __repr__(self) -> str:
        return (
            f"TokenWindowDataset({self.ids.numel()} ids, context_length={self.context_length}, "
            f"stride={self.stride}, {self._n} windows)"
        )


def make_dataloaders(
    data: str | Sequence[int] | torch.Tensor,
    tokenizer: Tokenizer | None = None,
    context_length: int = 256,
    stride: int | None = None,
    batch_size: int = 8,
    val_fraction: float = 0.1,
    seed: int = 0,
    **loader_kwargs: Any,
) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders over a text (tokenized with ``tokenizer``, GPT-2's by
    default) or over token ids.

    The last ``val_fraction`` of the ids is held out for validation: a contiguous split, so
    no validation window overlaps a training window. ``stride`` defaults to
    ``context_length`` (no overlap). Training batches are shuffled with ``seed``; validation
    batches come in order. Extra keyword arguments go to both ``DataLoader``s.
    """
    if isinstance(data, str):
        tokenizer = tokenizer or assets.tiktoken_gpt2()
        # In pieces: tiktoken takes the whole process down on a megabyte of whitespace.
        ids = _as_ids(encode_in_pieces(tokenizer.encode, data))
    else:
        if tokenizer is not None:
            raise ValueError("a tokenizer was given but data is already token ids; pass the text")
        ids = _as_ids(data)
    stride = context_length if stride is None else stride
    train_ids, val_ids = split_tokens(ids, val_fraction)  # the one split, as training's
    for part, part_ids in (("training", train_ids), ("validation", val_ids)):
        if len(part_ids) < context_length + 1:
            raise ValueError(
                f"the {part} split has {len(part_ids)} token ids, fewer than the "
                f"context_length + 1 = {context_length + 1} one window needs; use more text, "
                f"a smaller context_length, or a different val_fraction (now {val_fraction})"
            )
    train = TokenWindowDataset(train_ids, context_length, stride)
    val = TokenWindowDataset(val_ids, context_length, stride)
    g = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=g, **loader_kwargs),
        DataLoader(val, batch_size=batch_size, shuffle=False, **loader_kwargs),
    )


def embed(idx: torch.Tensor, wte: torch.nn.Embedding, wpe: torch.nn.Embedding) -> torch.Tensor:
    """GPT-2's input vectors: token embedding plus position embedding, (B, T) -> (B, T, C)."""
    if idx.dim() != 2:
        raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
    T = idx.size(1)
    if T > wpe.num_embeddings:
        raise ValueError(
            f"{T} positions but the position table has only {wpe.num_embeddings} rows; "
            f"crop the input to at most {wpe.num_embeddings} tokens"
        )
    pos = torch.arange(T, device=idx.device)  # (T,)
    # (B, T, C) + (T, C): the same position vectors are added to every sequence in the batch.
    return wte(idx) + wpe(pos)


Batch = tuple[torch.Tensor, torch.Tensor]


def split_tokens(
    ids: Sequence[int] | torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split token ids into (train, val): the last ``val_fraction`` is validation, unseen in training."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    t = torch.as_tensor(ids, dtype=torch.long)
    n = int(len(t) * (1 - val_fraction))
    return t[:n], t[n:]


@dataclass(eq=False)
class RandomBatches:
    """An endless, reproducible stream of ``(x, y)`` batches of random windows of a token array.

    Batch ``n`` depends only on ``(seed, n)``, so a run can resume at any position. Under
    data parallelism rank ``r`` of ``W`` takes global batches ``r, W + r, 2W + r, ...``: the
    ranks see disjoint shards of each step's data, and together exactly what one process
    with ``W`` times the gradient accumulation would see.
    """

    tokens: torch.Tensor | np.ndarray = field(repr=False)
    batch_size: int
    context_length: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        n, T = len(self.tokens), self.context_length
        if n < T + 1:
            raise ValueError(
                f"only {n} tokens: a window needs context_length + 1 = {T + 1} (the input and "
                "the one next token); use a smaller context_length or more text"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")

    def batch(self, n: int) -> Batch:
        """The ``n``-th batch of this rank: x and y, each (batch_size, context_length)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n * self.world_size + self.rank)
        # The last window starts at n - T - 1 (its target ends on the last token);
        # randint's bound is exclusive, so n - T draws every one of num_windows(n, T, 1).
        starts = torch.randint(
            len(self.tokens) - self.context_length, (self.batch_size, 1), generator=g
        )
        idx = starts + torch.arange(self.context_length)  # (B, T)
        return self._gather(idx), self._gather(idx + 1)  # y is x shifted by one token

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        if isinstance(self.tokens, np.ndarray):  # e.g. a np.memmap of a large .bin file
            return torch.from_numpy(self.tokens[idx.numpy()].astype(np.int64))
        return self.tokens[idx]

    def stream(self, start: int = 0) -> Iterator[Batch]:
        """Batches ``start``, ``start + 1``, ... forever."""
        return map(self.batch, itertools.count(start))

    def __iter__(self) -> Iterator[Batch]:
        return self.stream(0)


def batches_from(loader: Iterable[Batch], start: int) -> Iterator[Batch]:
    """``loader``'s batches from number ``start`` on, forever: a ``RandomBatches`` jumps
    there, other loaders are replayed epoch after epoch."""
    if hasattr(loader, "stream"):
        yield from loader.stream(start)
        return
    n = 0
    while True:
        epoch_start = n
        for b in loader:
            if n >= start:
                yield b
            n += 1
        if n == epoch_start:
            raise ValueError("the training loader gave no batches")


def check_batch(batch: Batch, model: torch.nn.Module) -> None:
    """Fail early, and clearly, on a batch ``model`` cannot take (``train`` checks its first)."""
    x, y = batch
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(
            f"a batch must be (x, y) token ids of the same shape (batch, time); got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    top = int(max(x.max(), y.max()))
    if vocab is not None and top >= vocab:
        raise ValueError(
            f"the data has token id {top} but the model's vocab_size is {vocab}; "
            "build the model with the tokenizer's vocabulary size"
        )
