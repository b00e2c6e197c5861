"""Checks for the exercises of part 5: sampling, one generation step, the KV cache."""

from __future__ import annotations

import dataclasses

import torch

from .. import generation as reference
from ..model import GPT, GPTConfig
from ._core import CheckFailure, call, check, compare_tensors, require_tensor

__all__ = ["check_generate_step", "check_generate_with_cache", "check_sample_next_token"]


def _tiny_model(seed: int = 0, scale: float = 20.0, **sizes) -> GPT:
    """A tiny random GPT whose greedy choices vary with the context: its weights are scaled
    up (std 0.4 instead of 0.02 by default), so that it does not repeat itself."""
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=60, context_length=16, n_embd=24, n_layer=2, n_head=3)
    model = GPT(dataclasses.replace(config, **sizes))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


# Two different rows: a bug that uses the first row's numbers for every row shows, and the
# second row is all negative, so cut logits set to 0 (not -inf) would win there.
# Logits close together, so that every wrong number of kept tokens shows in the frequencies.
_ROWS = torch.tensor(
    [
        [3.0, 2.8, 2.6, 2.4, 2.2, 2.2, 2.1, -1.0],
        [-5.0, -1.0, -4.0, -1.3, -1.9, -1.6, -2.0, -2.1],
    ]
)


def _probs(rows: torch.Tensor, keep: int | None, *, cut=float("-inf"), kth_from_row0=False):
    if keep is not None:
        kth = torch.topk(rows, keep, dim=-1).values[..., -1:]
        if kth_from_row0:
            kth = kth[:1].expand_as(kth)
        rows = rows.masked_fill(rows < kth, cut)
    return rows.softmax(-1).double()


def _ranks(rows: torch.Tensor, keep: int) -> torch.Tensor:
    """The distribution of the rank (0 .. keep-1) sampled among each row's top ``keep``."""
    out = torch.zeros(rows.shape, dtype=torch.float64)
    out[:, :keep] = torch.topk(rows, keep, dim=-1).values.softmax(-1).double()
    return out


def _row_frequencies(got: torch.Tensor, n_rows: int, vocab: int) -> torch.Tensor:
    ids = got.reshape(-1)
    return torch.stack(
        [torch.bincount(ids[r::n_rows], minlength=vocab)[:vocab].double() for r in range(n_rows)]
    ) / (ids.numel() // n_rows)


def _sample_next_token_reference(logits, temperature=1.0, top_k=None, generator=None):
    return reference.sample_next_token(logits, temperature, top_k, None, generator)


def _same_draws(f, *args, to: str, **kwargs) -> None:
    """Fail unless two calls with equally seeded generators (and other global seeds) agree."""
    a = call(f, *args, **kwargs, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(1)
    b = call(f, *args, **kwargs, generator=torch.Generator().manual_seed(7))
    if not torch.equal(a, b):
        raise CheckFailure(
            f"two calls with equally seeded generators gave different tokens; pass {to}"
        )


@check(
    "sample_next_token",
    _sample_next_token_reference,
    crash_meanings=[
        (
            r"probability tensor contains|invalid multinomial distribution",
            "probabilities that are NaN: a softmax over the batch axis (dim=0), where a column "
            "cut by top-k in every row is all -inf (each row's softmax is over its own logits, "
            "dim=-1), or a row whose logits are all -inf after top-k (each row's threshold is "
            "its own k-th largest logit)",
        )
    ],
)
def check_sample_next_token(f):
    """Check ``sample_next_token(logits, temperature=1.0, top_k=None, generator=None)`` -> (B, 1)."""
    # Greedy first: temperature 0 must not divide by zero.
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    try:
        got = call(f, logits, temperature=0.0, names=["logits"])
    except (NotImplementedError, CheckFailure):  # a RuntimeError too, but "not done yet"
        raise
    except (RuntimeError, ZeroDivisionError) as e:
        raise CheckFailure(
            f"temperature 0 raised {type(e).__name__}; temperature 0 means greedy: "
            "the most likely token, before any division by the temperature"
        ) from None
    if isinstance(got, torch.Tensor) and got.dim() == 1:
        raise CheckFailure(
            f"the result has shape {tuple(got.shape)}; return (B, 1), one id per row in a "
            "column (keepdim=True, or torch.multinomial(probs, 1)), so it can be "
            "concatenated to idx"
        )
    compare_tensors(got, logits.argmax(-1, keepdim=True), what="greedy choice (temperature 0)")

    # top_k above the vocabulary keeps every token; torch.topk refuses k > size.
    k = logits.size(-1) + 5
    try:
        got = call(f, logits, temperature=1.0, top_k=k, names=["logits"])
    except (NotImplementedError, CheckFailure):
        raise
    except RuntimeError as e:
        raise CheckFailure(
            f"top_k={k}, more than the {logits.size(-1)} tokens of the vocabulary, raised "
            f"RuntimeError ({str(e).splitlines()[0][:80]}); keep min(top_k, vocab) tokens: "
            "torch.topk cannot take more than there are"
        ) from None
    if isinstance(got, torch.Tensor) and got.shape != (logits.size(0), 1):
        raise CheckFailure(
            f"for top_k={k} (more than the vocabulary) the result has shape "
            f"{tuple(got.shape)}, expected {(logits.size(0), 1)}"
        )

    # Then the distribution, measured on many copies of two different rows.
    R, V = _ROWS.shape
    N, T, k = 3000, 0.5, 3
    many = _ROWS.repeat(N, 1)  # rows alternate: 0, 1, 0, 1, ...
    got = call(f, many, temperature=T, top_k=k, generator=torch.Generator().manual_seed(0),
               names=["logits"])  # fmt: skip
    if not isinstance(got, torch.Tensor) or got.shape != (N * R, 1):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise CheckFailure(
            f"for logits of shape ({N * R}, {V}) the result should be ({N * R}, 1), got {shape}"
        )
    require_tensor(got, "token ids", dtype=torch.long)
    freq = _row_frequencies(got, R, V)
    scaled = _ROWS / T
    greedy = torch.zeros(R, V, dtype=torch.float64)
    greedy[torch.arange(R), _ROWS.argmax(-1)] = 1.0
    bugs = [
        (
            "the logits are multiplied by the temperature; divide them: logits / temperature",
            _probs(_ROWS * T, k),
        ),
        (
            "the temperature has no effect: divide the logits before the softmax (dividing "
            "the probabilities changes nothing once they are renormalised)",
            _probs(_ROWS, k),
        ),
        ("top-k is not applied: keep only the k largest logits", _probs(scaled, None)),
        (
            "top-k keeps k + 1 tokens: keep logits >= the k-th largest, not >= the (k+1)-th",
            _probs(scaled, k + 1),
        ),
        ("top-k keeps k - 1 tokens: keep logits >= the k-th largest", _probs(scaled, k - 1)),
        (
            "the cut logits are set to 0, which still leaves them a share (and more than "
            "the kept ones in a row of negative logits); set them to float('-inf')",
            _probs(scaled, k, cut=0.0),
        ),
        (
            "the first row's k-th largest logit is used for every row; each row keeps its "
            "own k largest (keep the row axis: values[:, -1:])",
            _probs(scaled, k, kth_from_row0=True),
        ),
        ("the choice is always greedy: at temperature > 0, sample", greedy),
        (
            "the sampled position among the top k is returned, not the token's id: map the "
            "sampled position back through torch.topk's indices (gather)",
            _ranks(scaled, k),
        ),
    ]
    compare_tensors(
        freq, _probs(scaled, k), what=f"frequency of each token in each row over {N} draws",
        atol=0.03, rtol=0.0, likely_bugs=bugs,
    )  # fmt: skip

    # Same seed, same draws: the generator must be passed on to torch.multinomial.
    _same_draws(f, many[:200], temperature=1.0, to="generator=generator to torch.multinomial")


@check(
    "generate_step",
    reference.generate_step,
    crash_meanings=[
        (
            r"Tensors must have same number of dimensions",
            "the new id has shape (B,) and idx (B, T): make it a column, (B, 1), before appending",
        ),
        (
            r"Sizes of tensors must match except in dimension 0",
            "torch.cat along the batch axis: append along the time axis (dim=1)",
        ),
    ],
)
def check_generate_step(f):
    """Check ``generate_step(model, idx, temperature=1.0, top_k=None, generator=None)`` -> (B, T+1)."""
    model = _tiny_model()
    context_length = model.config.context_length
    idx = torch.randint(0, 60, (2, 7), generator=torch.Generator().manual_seed(0))
    got = call(f, model, idx, temperature=0.0, names=["model", "idx"])
    with torch.no_grad():
        logits = model(idx)
    first = logits[:, 0].argmax(-1, keepdim=True)
    bugs = [
        (
            "only the new token is returned; append it to idx (the result is (B, T + 1))",
            logits[:, -1].argmax(-1, keepdim=True),
        ),
        (
            "the new token comes from the first position's logits; the prediction for "
            "the next token is at the last position",
            torch.cat([idx, first], 1),
        ),
    ]
    require_tensor(got, "result", dtype=torch.long)
    compare_tensors(
        got, reference.generate_step(model, idx, temperature=0.0), what="idx after one greedy step",
        atol=0, rtol=0, likely_bugs=bugs,
    )  # fmt: skip
    # Longer than the context: the model sees only the last context_length tokens.
    long = torch.randint(0, 60, (1, context_length + 5), generator=torch.Generator().manual_seed(1))
    try:
        got = call(f, model, long, temperature=0.0, names=["model", "idx"])
    except ValueError as e:
        if "longer than the model's context" in str(e):
            raise CheckFailure(
                f"an input of {context_length + 5} tokens made the model fail; the model reads at "
                "most context_length tokens, so feed it only the last ones"
            ) from None
        raise
    step = reference.generate_step
    compare_tensors(
        got, step(model, long, temperature=0.0),
        what=f"idx after a step from {context_length + 5} tokens (context {context_length})", atol=0, rtol=0,
        likely_bugs=[
            ("the crop dropped the earlier tokens from the result: crop only what the model sees, return all of idx plus the new token", step(model, long[:, -context_length:], temperature=0.0)),
            ("the crop keeps the first context_length tokens; the model must see the last ones", torch.cat([long, step(model, long[:, :context_length], temperature=0.0)[:, -1:]], 1)),
            ("the crop keeps context_length - 1 tokens: the model can see all context_length of them (idx[:, -context_length:])", torch.cat([long, step(model, long[:, -(context_length - 1):], temperature=0.0)[:, -1:]], 1)),
        ],
    )  # fmt: skip
    # Sampling, on many copies of one prompt: temperature, top_k and the generator count.
    # A high temperature: the tiny model is so sure of itself that top-k would not show.
    N, T, k = 3000, 8.0, 3
    many = idx[:1].repeat(N, 1)
    gen = torch.Generator().manual_seed(0)
    got = call(f, model, many, temperature=T, top_k=k, generator=gen, names=["model", "idx"])
    require_tensor(got, "result", dtype=torch.long)
    if got.shape != (N, idx.size(1) + 1):
        raise CheckFailure(f"for idx of shape ({N}, {idx.size(1)}) the result should be "
                           f"({N}, {idx.size(1) + 1}), got {tuple(got.shape)}")  # fmt: skip
    last = logits[0, -1]
    V = last.numel()
    freq = torch.bincount(got[:, -1], minlength=V)[:V].double() / N
    greedy = torch.zeros(V, dtype=torch.float64)
    greedy[last.argmax()] = 1.0
    compare_tensors(
        freq, _probs(last / T, k), what=f"frequency of the new token over {N} sampled steps (temperature {T}, top_k {k})",
        atol=0.03, rtol=0.0,
        likely_bugs=[
            ("the step is always greedy: pass temperature, top_k and generator on to the sampling", greedy),
            ("top_k is not passed on: the sampling keeps every token", _probs(last / T, None)),
            ("the temperature is applied twice: the logits are divided by it, then the sampler divides again; pass the raw logits", _probs(last / T / T, k)),
            ("temperature and top_k are swapped: pass them by name (temperature=..., top_k=...), or in the sampler's order", _probs(last / k, int(T))),
        ],
    )  # fmt: skip
    _same_draws(f, model, many[:100], temperature=T, to="generator on to the sampling")


def _count_positions(model: GPT) -> list[int]:
    """Count the token positions ``model`` is asked to process, without wrapping it (a
    wrapper would hide the model's attributes from the learner's code)."""
    seen = [0]

    def hook(module, args, kwargs):
        idx = args[0] if args else kwargs.get("idx")
        if isinstance(idx, torch.Tensor):
            seen[0] += idx.size(-1)

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def _generate_with_cache_reference(model, idx, max_new_tokens):
    return reference.generate(model, idx, max_new_tokens, temperature=0, use_cache=True)


@check(
    "generate_with_cache",
    _generate_with_cache_reference,
    crash_meanings=[
        (
            r"longer than the model's context",
            "tokens the cache already holds are fed again: after the prompt, feed only the "
            "newest token, model(next_id, cache=cache)",
        )
    ],
)
def check_generate_with_cache(f):
    """Check ``generate_with_cache(model, idx, max_new_tokens)`` (greedy, KV cache)."""
    model = _tiny_model(1)
    T, n = 4, 8
    idx = torch.randint(0, 60, (2, T), generator=torch.Generator().manual_seed(2))
    counted = _count_positions(model)
    got = call(f, model, idx, n, names=["model", "idx"])
    positions = counted[0]
    want = reference.generate(model, idx, n, temperature=0)
    # The usual mistake, replayed on the real model: the newest token fed without the
    # cache (or with a fresh one each step), so it sees nothing before it.
    with torch.no_grad():
        nocache = idx
        next_id = model(idx)[:, -1:].argmax(-1)
        for _ in range(n - 1):
            nocache = torch.cat([nocache, next_id], 1)
            next_id = model(next_id)[:, -1:].argmax(-1)
        nocache = torch.cat([nocache, next_id], 1)
    compare_tensors(
        got, want, what="generated ids", atol=0, rtol=0,
        likely_bugs=[
            ("the newest token is fed without the cache (or with a new one), so it sees nothing before it: make one KVCache before the loop and pass cache=cache at every step", nocache),
            ("one token too few: the result has max_new_tokens new ids", want[:, :-1]),
            ("one token too many: the result has max_new_tokens new ids", reference.generate(model, idx, n + 1, temperature=0)),
            ("only the new tokens are returned; return the prompt followed by them", want[:, T:]),
        ],
    )  # fmt: skip
    # The prompt once, then one token per step (a last, unused step is fine).
    if positions > T + n:
        raise CheckFailure(
            f"the model processed {positions} token positions for a {T}-token "
            f"prompt and {n} new tokens, expected {T + n - 1}: the whole sequence is fed "
            "at every step, which is the loop without a cache; feed only the newest token "
            "with cache=cache"
        )
