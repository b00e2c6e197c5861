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
import torch.nn.functional as F

from .generation import check_prompt, check_sampling_args, sample_next_token
from .model import GPT

__all__ = ["FastGenerator"]


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class FastGenerator:
    """Decode from a ``GPT`` with a static KV cache, replaying each step as a CUDA graph on a GPU.

    Sampling (temperature, top-k, top-p) is part 5's, applied to the logits each step returns.
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
        self._step = torch.compile(self._forward, dynamic=False) if compile else self._forward
        self._shape: tuple[int, int] | None = None  # (batch, cache length) allocated for
        self._graph: torch.cuda.CUDAGraph | None = None

    # ------------------------------------------------------------------ the model, by hand

    def _forward(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab) of the last of the tokens ``idx`` (B, T) at positions ``pos`` (T,),
        writing their keys and values into the cache at those positions."""
        m, L = self.model, self.k.size(3)
        nh = self.config.n_head
        x = m.wte(idx) + m.wpe(pos)  # (B, T, C)
        B, T, C = x.shape
        # Query t may see cache slots 0..pos[t]; later slots hold nothing yet (or stale keys).
        mask = torch.arange(L, device=x.device)[None, :] <= pos[:, None]  # (T, L)
        for i, block in enumerate(m.h):
            a = block.attn
            q, k, v = a.c_attn(block.ln_1(x)).split(C, dim=2)  # 3 x (B, T, C)
            q = q.view(B, T, nh, C // nh).transpose(1, 2)  # (B, nh, T, hd)
            k = k.view(B, T, nh, C // nh).transpose(1, 2)
            v = v.view(B, T, nh, C // nh).transpose(1, 2)
            self.k[i].index_copy_(2, pos, k)  # (B, nh, L, hd), in place: same memory every step
            self.v[i].index_copy_(2, pos, v)
            y = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=mask)
            x = x + a.c_proj(y.transpose(1, 2).reshape(B, T, C))
            x = x + block.mlp(block.ln_2(x))
        return m.lm_head(m.ln_f(x[:, -1]))  # (B, vocab)

    # ------------------------------------------------------------------ cache and graph

    def _allocate(self, batch: int, length: int) -> None:
        if self._shape is not None and self._shape[0] == batch and self._shape[1] >= length:
            return  # big enough: slots past the text are masked, whatever they hold
        c = self.config
        shape = (c.n_layer, batch, c.n_head, length, c.n_embd // c.n_head)
        self._graph = None
        self.k = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.v = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self._tok = torch.zeros(batch, 1, dtype=torch.long, device=self.device)
        self._pos = torch.zeros(1, dtype=torch.long, device=self.device)
        self._shape = (batch, length)
        if self.use_cuda_graph:
            try:
                self._capture()
            except RuntimeError as e:  # e.g. an op that cannot be captured on this setup
                warnings.warn(
                    f"CUDA graph capture failed ({e}); decoding eagerly instead", stacklevel=3
                )
                self._graph, self.use_cuda_graph = None, False

    def _capture(self) -> None:
        """Record one decoding step. Its warm-up writes junk at slot 0, which the prompt's
        prefill overwrites before anything reads it."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # let cuBLAS and the allocator settle outside the graph
                self._step(self._tok, self._pos)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._out = self._step(self._tok, self._pos)

    def _decode(self, tok: torch.Tensor, pos: int) -> torch.Tensor:
        if self._graph is None:
            return self._step(tok, torch.tensor([pos], device=self.device))
        self._tok.copy_(tok)
        self._pos.fill_(pos)
        self._graph.replay()
        return self._out

    # ------------------------------------------------------------------ generation

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
        context is cropped to its last ``n_positions`` tokens, and with ``eos_token`` a row
        that has produced it keeps producing it until every row has, then the stream stops.
        """
        check_sampling_args(temperature, top_k, top_p)
        check_prompt(idx, max_new_tokens, self.config.vocab_size)  # as generation's plain path
        n_ctx = self.config.n_positions
        idx = idx[:, -n_ctx:].to(self.device)  # the model cannot see further back
        B, T = idx.shape
        want = min(n_ctx, T + max_new_tokens)
        # Round the cache up so that nearby lengths share one cache and one graph.
        self._allocate(
            B, min(n_ctx, max(want, self.max_len) if self.max_len else _round_up(want, 128))
        )
        L = self._shape[1]
        # The prompt goes through eagerly and uncompiled: its length varies from call to call.
        logits = self._forward(idx, torch.arange(T, device=self.device))
        new: list[torch.Tensor] = []  # only needed once the text outgrows the context
        finished = torch.zeros(B, dtype=torch.bool, device=self.device)
        for n in range(max_new_tokens):
            tok = sample_next_token(logits.float(), temperature, top_k, top_p, generator)  # (B, 1)
            if eos_token is not None:
                tok = tok.masked_fill(finished[:, None], eos_token)
                finished |= tok[:, 0] == eos_token
            yield tok[:, 0]
            if n + 1 == max_new_tokens or (eos_token is not None and bool(finished.all())):
                return
            new.append(tok)
            pos = T + n
            if pos < L:
                logits = self._decode(tok, pos)
            else:
                # Past the context every position shifts by one per token, so no cached key
                # stays valid: recompute the whole window, as part 5 does.
                window = torch.cat([idx, *new], dim=1)[:, -n_ctx:]  # (B, n_ctx)
                logits = self.model(window)[:, -1]

    def generate(self, idx: torch.Tensor, max_new_tokens: int, **sampling) -> torch.Tensor:
        """``idx`` (B, T) with ``max_new_tokens`` tokens appended (B, T + new)."""
        new = list(self.stream(idx, max_new_tokens, **sampling))
        if not new:
            return idx.clone()
        return torch.cat([idx.to(self.device), torch.stack(new, dim=1)], dim=1)
