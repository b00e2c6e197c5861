"""The KV cache: the keys and values of the positions a model has already seen.

Decoding feeds one new token per step; its query must see every earlier key and value, which
the cache keeps instead of recomputing them. ``model(idx, cache=cache)`` takes any object with
this interface: ``len(cache)``, ``cache.positions(T, device)``, ``cache.reset()`` and one layer
cache per block in ``cache.layers``, whose ``update(k, v)`` returns all keys and values so far
and the mask of the keys each new query may see.

- ``LayerCache``: one layer's store, grown by ``torch.cat`` (part 5's exercise, written here
  exactly as the exercise asks: ``update(k, v)`` returns all keys and values, ``len`` counts
  positions). ``KVCache`` keeps one per layer, the package's or yours.
- ``StaticKVCache``: allocated once at its final length and written in place, so every step has
  the same shapes and memory, which a CUDA graph needs (``fastgen``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .attention import causal_mask
from .config import GPTConfig


class LayerCache:
    """One layer's keys and values so far, (B, n_head, T, head_dim), grown by ``torch.cat``."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        """How many positions are stored."""
        return 0 if self.k is None else self.k.size(2)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' keys and values (B, n_head, T_new, head_dim); return all
        of them, (B, n_head, T_past + T_new, head_dim) each."""
        if self.k is not None:
            k = torch.cat([self.k, k], dim=2)  # along time: the new positions come last
            v = torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class CachedLayer:
    """What one attention layer is handed: its store (a ``LayerCache``, or yours), plus the
    mask of the stored keys each new query may see."""

    def __init__(self, store: Any):
        self.store = store

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """Store the new keys and values; return all of them and the mask (None: every key)."""
        T_new = k.size(2)
        k, v = self.store.update(k, v)
        T = k.size(2)
        # The new queries are the last T_new positions, each seeing the keys up to itself;
        # a single new query (a decoding step) sees them all.
        return k, v, None if T_new == 1 else causal_mask(T, device=k.device)[T - T_new :]


class KVCache:
    """The keys and values of every position the model has seen, one store per layer.

    ``model(idx, cache=cache)`` reads the earlier positions from it and appends ``idx``'s, so the
    next call feeds only the new tokens (part 5). ``layer`` makes one layer's store:
    ``LayerCache``, or your class with its interface. ``StaticKVCache`` below has the same
    interface.
    """

    def __init__(self, n_layer: int, layer: Callable[[], Any] = LayerCache):
        self.make_layer = layer
        self.layers = [CachedLayer(layer()) for _ in range(n_layer)]

    def __len__(self) -> int:
        return len(self.layers[0].store)

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """The positions (T,) of the next T tokens: they come after the cached ones."""
        return torch.arange(len(self), len(self) + T, device=device)

    def reset(self) -> None:
        """Forget every position."""
        self.layers = [CachedLayer(self.make_layer()) for _ in self.layers]


class StaticLayer:
    """One layer's view of a ``StaticKVCache``."""

    def __init__(self, cache: StaticKVCache, i: int):
        self.cache, self.i = cache, i

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """Write the new keys and values at their positions; return the whole buffers and the
        mask of the slots each new query may see."""
        c = self.cache
        c.k[self.i].index_copy_(2, c.pos, k)  # (B, nh, L, hd), in place: same memory every step
        c.v[self.i].index_copy_(2, c.pos, v)
        return c.k[self.i], c.v[self.i], c.mask


class StaticKVCache:
    """Keys and values preallocated for ``length`` positions, written in place.

    The position of the next token is kept in a tensor too (``start``), so that a recorded
    CUDA graph reads it at replay instead of baking in the value it had when recorded. The
    caller moves on with ``advance(T)`` after each call of the model.
    """

    def __init__(self, config: GPTConfig, batch: int, length: int, device, dtype):
        shape = (config.n_layer, batch, config.n_head, length, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.start = torch.zeros(1, dtype=torch.long, device=device)
        self.length = 0
        self.layers = [StaticLayer(self, i) for i in range(config.n_layer)]

    def __len__(self) -> int:
        return self.length

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """The positions (T,) of the next T tokens, and the mask their queries use."""
        self.pos = self.start + torch.arange(T, device=device)  # (T,)
        # Query t may see slots 0..pos[t]; later slots hold nothing yet (or stale keys).
        self.mask = torch.arange(self.k.size(3), device=device)[None, :] <= self.pos[:, None]
        return self.pos

    def advance(self, T: int) -> None:
        """Count the T positions just written."""
        self.length += T
        self.start.fill_(self.length)

    def reset(self) -> None:
        """Forget every position (the buffers keep their memory)."""
        self.length = 0
        self.start.zero_()
