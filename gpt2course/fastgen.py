"""Fast decoding: a preallocated KV cache, and on a GPU one CUDA graph per generated token.

At batch 1 a GPU spends most of a decoding step not computing but waiting: for the CPU to
launch ~15 small kernels per layer, and for each layer's weights to stream in from memory.
Two changes remove most of the first cost:

- a *static* KV cache, allocated once at its final length, so every step has the same
  shapes and writes into the same memory (the growing ``torch.cat`` cache of part 5
  allocates and copies at every step);
- a CUDA graph: the whole step (all layers) is recorded once and then replayed with a
  single launch.

What is left is the memory-bandwidth bound: each token must read every weight once.
On a CPU (or with ``use_cuda_graph=False``) the same code runs eagerly: slower, same tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch

from .cache import StaticKVCache
from .generation import check_prompt, check_sampling_args, decode, sample_next_token
from .model import GPT


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class FastGenerator:
    """Decode from a ``GPT`` with a static KV cache, replaying each step as a CUDA graph on a GPU.

    The model's own forward runs with a ``StaticKVCache``, in ``generation.decode``'s loop;
    sampling (temperature, top-k, top-p) is part 5's.
    """

    def __init__(
        self,
        model: GPT,
        use_cuda_graph: bool | None = None,
        compile: bool = False,
        max_len: int | None = None,
    ):
        """``max_len`` fixes the cache length (prompt + new tokens) up front, so that calls
        of different lengths share one cache and one graph; by default it grows as needed."""
        self.model = model.eval()
        self.max_len = max_len
        self.config = model.config
        p = model.wte.weight
        self.device, self.dtype = p.device, p.dtype
        cuda = self.device.type == "cuda"
        self.use_cuda_graph = cuda if use_cuda_graph is None else use_cuda_graph
        if self.use_cuda_graph and not cuda:
            raise ValueError(
                "CUDA graphs need the model on a GPU; use use_cuda_graph=False on the CPU"
            )
        # torch.compile fuses the small ops between the matmuls of a decoding step (the one
        # shape that repeats); compiling takes a minute.
        self._decode = torch.compile(self._forward, dynamic=False) if compile else self._forward
        self.cache: StaticKVCache | None = None
        self._graph: torch.cuda.CUDAGraph | None = None

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, cache=self.cache)[:, -1]  # (B, vocab)

    def _step(self, tokens: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        """Logits (B, vocab) of the last of ``tokens``: a replay of the graph for one token, else
        eagerly (the prompt's length varies from call to call)."""
        if tokens.size(1) > 1:
            logits = self._forward(tokens)
        elif self._graph is not None:
            self._tok.copy_(tokens)
            self._graph.replay()
            logits = self._out
        else:
            logits = self._decode(tokens)
        cache.advance(tokens.size(1))
        return logits

    def _allocate(self, batch: int, length: int) -> None:
        c = self.cache
        if c is not None and c.k.size(1) == batch and c.k.size(3) >= length:
            return  # big enough: slots past the text are masked, whatever they hold
        self._graph = None
        self.cache = StaticKVCache(self.config, batch, length, self.device, self.dtype)
        self._tok = torch.zeros(batch, 1, dtype=torch.long, device=self.device)
        if self.use_cuda_graph:
            try:
                self._capture()
            except RuntimeError as e:  # e.g. an op that cannot be captured on this setup
                warnings.warn(
                    f"CUDA graph capture failed ({e}); decoding eagerly instead", stacklevel=3
                )
                self._graph, self.use_cuda_graph = None, False

    def _capture(self) -> None:
        """Record one decoding step. Its warm-up writes junk at slot 0, which the prompt
        overwrites before anything reads it."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # let cuBLAS and the allocator settle outside the graph
                self._decode(self._tok)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._out = self._decode(self._tok)

    @torch.no_grad()
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        eos_token: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield each new token (B,) as soon as it is chosen; temperature 0 is greedy.

        Same arguments and behaviour as ``generation.stream``: a prompt longer than the
        context is cropped to its last ``context_length`` tokens, and with ``eos_token`` a row
        that has produced it keeps producing it until every row has, then the stream stops.
        """
        check_sampling_args(temperature, top_k, top_p)
        check_prompt(idx, max_new_tokens, self.config.vocab_size)
        context_length = self.config.context_length
        idx = idx[:, -context_length:].to(self.device)
        want = min(context_length, idx.size(1) + max_new_tokens)
        # Round the cache up so that nearby lengths share one cache and one graph.
        length = max(want, self.max_len) if self.max_len else _round_up(want, 128)
        self._allocate(idx.size(0), min(context_length, length))

        def pick(logits: torch.Tensor) -> torch.Tensor:
            return sample_next_token(logits.float(), temperature, top_k, top_p, generator)

        yield from decode(
            self._step, idx, max_new_tokens, pick, context_length, eos_token, self.cache
        )

    def generate(self, idx: torch.Tensor, max_new_tokens: int, **sampling) -> torch.Tensor:
        """``idx`` (B, T) with ``max_new_tokens`` tokens appended (B, T + new)."""
        new = list(self.stream(idx, max_new_tokens, **sampling))
        if not new:
            return idx.clone()
        return torch.cat([idx.to(self.device), torch.stack(new, dim=1)], dim=1)
