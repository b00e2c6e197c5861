"""Checks for the exercises of part 5: sampling, one generation step, the KV cache."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import generation as reference
from ..model import GPT, GPTConfig
from ._core import CheckFailure, compare_tensors, run_check

__all__ = ["check_generate_step", "check_generate_with_cache", "check_sample_next_token"]


def _tiny_model(seed: int = 0) -> GPT:
    """A tiny random GPT whose greedy choices vary with the context."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=60, n_positions=16, n_embd=24, n_layer=2, n_head=3))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)  # std 0.4 instead of 0.02: a random model that does not repeat itself
    return model.eval()


def _frequencies(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(ids.flatten(), minlength=vocab).double() / ids.numel()


def check_sample_next_token(sample_next_token: Callable, hint: int = 1) -> Callable:
    """Check ``sample_next_token(logits, temperature=1.0, top_k=None, generator=None)`` -> (B, 1)."""

    def test(f):
        # Greedy first: temperature 0 must not divide by zero.
        logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
        try:
            got = f(logits, temperature=0.0)
        except NotImplementedError:  # a RuntimeError too, but it means "not done yet"
            raise
        except (RuntimeError, ZeroDivisionError) as e:
            raise CheckFailure(
                f"temperature 0 raised {type(e).__name__}; temperature 0 means greedy: "
                "return logits.argmax(dim=-1, keepdim=True) before dividing by the temperature"
            ) from None
        if isinstance(got, torch.Tensor) and got.dim() == 1:
            raise CheckFailure(
                f"the result has shape {tuple(got.shape)}; return (B, 1), one id per row in a "
                "column (keepdim=True, or torch.multinomial(probs, 1)), so it can be "
                "concatenated to idx"
            )
        compare_tensors(got, logits.argmax(-1, keepdim=True), what="greedy choice (temperature 0)")

        # Then the distribution, measured on many rows of the same logits.
        row = torch.tensor([3.0, 2.5, 2.2, 1.0, 0.0, -1.0])
        V, N, T, k = row.numel(), 4000, 0.5, 2
        many = row.repeat(N, 1)
        got = f(many, temperature=T, top_k=k, generator=torch.Generator().manual_seed(0))
        if not isinstance(got, torch.Tensor) or got.shape != (N, 1):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckFailure(
                f"for logits of shape ({N}, {V}) the result should be ({N}, 1), got {shape}"
            )
        if got.dtype != torch.long:
            raise CheckFailure(f"the token ids should be torch.long, got {got.dtype}")
        freq = _frequencies(got, V)

        def probs(scaled: torch.Tensor, keep: int | None) -> torch.Tensor:
            if keep is not None:
                scaled = reference.filter_top_k(scaled, keep)
            return scaled.softmax(-1).double()

        bugs = [
            (
                "the logits are multiplied by the temperature; divide them: logits / temperature",
                probs(row * T, k),
            ),
            (
                "the temperature has no effect: divide the logits before the softmax (dividing "
                "the probabilities changes nothing once they are renormalised)",
                probs(row, k),
            ),
            (
                "top-k keeps no fewer tokens than before; keep only the k largest logits",
                probs(row / T, None),
            ),
            (
                "top-k keeps k + 1 tokens: keep logits >= the k-th largest, not >= the (k+1)-th",
                probs(row / T, k + 1),
            ),
            (
                "top-k keeps k - 1 tokens: keep logits >= the k-th largest (topk(...).values[..., -1])",
                probs(row / T, k - 1),
            ),
        ]
        compare_tensors(
            freq, probs(row / T, k), what=f"frequency of each token over {N} draws",
            atol=0.03, rtol=0.0, likely_bugs=bugs,
        )  # fmt: skip

        # Same seed, same draws: the generator must be passed on to torch.multinomial.
        a = f(many[:200], temperature=1.0, generator=torch.Generator().manual_seed(7))
        torch.manual_seed(1)
        b = f(many[:200], temperature=1.0, generator=torch.Generator().manual_seed(7))
        if not torch.equal(a, b):
            raise CheckFailure(
                "two calls with equally seeded generators gave different tokens; pass "
                "generator=generator to torch.multinomial"
            )

    def ref(logits, temperature=1.0, top_k=None, generator=None):
        return reference.sample_next_token(logits, temperature, top_k, None, generator)

    return run_check("sample_next_token", sample_next_token, ref, test, hint=hint)


def check_generate_step(generate_step: Callable, hint: int = 1) -> Callable:
    """Check ``generate_step(model, idx, temperature=1.0, top_k=None, generator=None)`` -> (B, T+1)."""

    def test(f):
        model = _tiny_model()
        n_ctx = model.config.n_positions
        idx = torch.randint(0, 60, (2, 7), generator=torch.Generator().manual_seed(0))
        got = f(model, idx, temperature=0.0)
        with torch.no_grad():
            logits = model(idx)
        first = logits[:, 0].argmax(-1, keepdim=True)
        bugs = [
            (
                "only the new token is returned; append it: torch.cat([idx, next_id], dim=1)",
                logits[:, -1].argmax(-1, keepdim=True),
            ),
            (
                "the new token comes from the first position's logits; use the last: logits[:, -1, :]",
                torch.cat([idx, first], 1),
            ),
        ]
        compare_tensors(
            got, reference.generate_step(model, idx, temperature=0.0), what="idx after one greedy step",
            atol=0, rtol=0, likely_bugs=bugs,
        )  # fmt: skip
        # Longer than the context: the model sees only the last n_positions tokens.
        long = torch.randint(0, 60, (1, n_ctx + 5), generator=torch.Generator().manual_seed(1))
        try:
            got = f(model, long, temperature=0.0)
        except ValueError as e:
            if "longer than the model's context" in str(e):
                raise CheckFailure(
                    f"an input of {n_ctx + 5} tokens made the model fail; crop it to the last "
                    f"n_positions tokens first: idx[:, -model.config.n_positions:]"
                ) from None
            raise
        compare_tensors(
            got, reference.generate_step(model, long, temperature=0.0),
            what=f"idx after a step from {n_ctx + 5} tokens (context {n_ctx})", atol=0, rtol=0,
            likely_bugs=[("the crop dropped the earlier tokens from the result: crop only what the model sees, return all of idx plus the new token", reference.generate_step(model, long[:, -n_ctx:], temperature=0.0))],
        )  # fmt: skip

    return run_check("generate_step", generate_step, reference.generate_step, test, hint=hint)


class _Counting(torch.nn.Module):
    """Wraps a GPT and counts the token positions it is asked to process."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model
        self.config = model.config
        self.positions = 0

    def forward(self, idx, *args, **kwargs):
        self.positions += idx.size(1)
        return self.model(idx, *args, **kwargs)


def check_generate_with_cache(generate_with_cache: Callable, hint: int = 1) -> Callable:
    """Check ``generate_with_cache(model, idx, max_new_tokens)`` (greedy, KV cache)."""

    def test(f):
        model = _tiny_model(1)
        T, n = 4, 8
        idx = torch.randint(0, 60, (2, T), generator=torch.Generator().manual_seed(2))
        counting = _Counting(model)
        got = f(counting, idx, n)
        want = reference.generate(model, idx, n, temperature=0, use_cache=False)
        # The usual mistakes, replayed on the real model.
        with torch.no_grad():
            logits, first_cache = model(idx, return_cache=True)
            out, cache = idx, first_cache
            stale, nocache = idx, idx
            stale_next = nocache_next = logits[:, -1:].argmax(-1)
            for _ in range(n - 1):
                stale = torch.cat([stale, stale_next], 1)
                stale_next = model(stale_next, kv_cache=first_cache)[:, -1:].argmax(-1)
                nocache = torch.cat([nocache, nocache_next], 1)
                nocache_next = model(nocache_next)[:, -1:].argmax(-1)
            stale = torch.cat([stale, stale_next], 1)
            nocache = torch.cat([nocache, nocache_next], 1)
        del out, cache
        compare_tensors(
            got, want, what="generated ids", atol=0, rtol=0,
            likely_bugs=[
                ("the cache is not updated: keep the cache each call returns (logits, cache = model(..., kv_cache=cache, return_cache=True))", stale),
                ("the newest token is fed without the cache, so it sees nothing before it: pass kv_cache=cache", nocache),
            ],
        )  # fmt: skip
        # The prompt once, then one token per step (a last, unused step is fine).
        if counting.positions > T + n:
            raise CheckFailure(
                f"the model processed {counting.positions} token positions for a {T}-token "
                f"prompt and {n} new tokens, expected {T + n - 1}: the whole sequence is fed "
                "at every step, which is the loop without a cache; feed only the newest token "
                "with kv_cache=cache"
            )

    def ref(model, idx, max_new_tokens):
        return reference.generate(model, idx, max_new_tokens, temperature=0)

    return run_check("generate_with_cache", generate_with_cache, ref, test, hint=hint)
