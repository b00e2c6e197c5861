"""Checks for the exercises of part 5: sampling, one generation step, the KV cache's store."""

from __future__ import annotations

import dataclasses

import torch

from .. import cache as cache_reference
from .. import generation as reference
from ..model import GPT, GPTConfig
from ._core import (
    _DEVICE_ERROR,
    CheckFailure,
    call,
    check,
    compare_tensors,
    require_tensor,
    say,
)

__all__ = ["check_generate_step", "check_layer_cache", "check_sample_next_token"]


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


def _length(store, want: int, after: str, calls: int) -> None:
    """Fail unless ``len(store)`` is ``want``, naming what the learner's ``__len__`` counts."""
    n = call(store.__len__)
    if isinstance(n, torch.Tensor) or not isinstance(n, int):
        raise CheckFailure(
            f"len() of the cache gave {type(n).__name__}; __len__ must return a Python int "
            "(k.size(2) is one)"
        )
    if n == want:
        return
    counted = [
        (calls, "the calls of update"),
        (_B, "the batch (dim 0)"),
        (_H, "the heads (dim 1)"),
        (_D, "the channels of a head (dim 3)"),
    ]
    what = next((f"; it counts {name}" for m, name in counted if m == n and n), "")
    raise CheckFailure(
        say(
            (
                f"len() gave {n} {after}, expected {want}: len counts the positions stored, "
                f"along the time axis (dim 2 of (B, n_head, T, head_dim)){what}",
                "k.size(2) of the stored keys is the number of positions; an empty cache holds 0",
            )
        )
    )


# Every size distinct, so that a length or a concatenation along the wrong axis shows which
# axis it took; new positions in uneven steps (a prompt of 3, one token, then 2).
_B, _H, _D, _STEPS = 2, 5, 7, (3, 1, 2)


@check(
    "LayerCache",
    cache_reference.LayerCache,
    crash_meanings=[
        (
            r"Sizes of tensors must match except in dimension \d|Tensors must have same "
            r"number of dimensions",
            "the keys are joined along the wrong axis: the new positions go along time, "
            "dim 2 of (B, n_head, T, head_dim), torch.cat([self.k, k], dim=2)",
        ),
        (
            r"'NoneType' object has no attribute|NoneType.* is not subscriptable",
            "an empty cache's keys are None: len() of an empty cache is 0, and the first "
            "update stores k and v as they are",
        ),
    ],
)
def check_layer_cache(cls):
    """Check a ``LayerCache`` class: ``update(k, v)`` appends each layer's new keys and values
    along time and returns all of them; ``len`` counts the positions stored."""
    g = torch.Generator().manual_seed(0)
    new = [
        (torch.randn(_B, _H, T, _D, generator=g), torch.randn(_B, _H, T, _D, generator=g))
        for T in _STEPS
    ]
    store, other = cls(), cls()
    _length(store, 0, "for a new cache", calls=0)
    keys = values = None
    for i, (k, v) in enumerate(new, start=1):
        got = call(store.update, k, v, names=["k", "v"])
        if not isinstance(got, tuple | list) or len(got) != 2:
            n = len(got) if isinstance(got, tuple | list) else None
            extra = "; the model adds the mask itself" if n == 3 else ""
            raise CheckFailure(
                "update should return two tensors, all the keys and all the values so far, "
                f"got {'a tuple of ' + str(n) if n is not None else type(got).__name__}{extra}"
            )
        old_k, old_v = keys, values
        keys = k if old_k is None else torch.cat([old_k, k], dim=2)
        values = v if old_v is None else torch.cat([old_v, v], dim=2)
        got_k, got_v = got
        for what, t in (("keys", got_k), ("values", got_v)):
            require_tensor(t, f"{what} update returned")
        only = "update returns only the new {0}: append them to the stored ones and return all"
        bugs_k = [(only.format("keys"), k)] if old_k is not None else []
        bugs_v = [(only.format("values"), v)] if old_v is not None else []
        if old_k is not None:
            bugs_k.append(("the new keys go after the stored ones: torch.cat([self.k, k], dim=2)",
                           torch.cat([k, old_k], dim=2)))  # fmt: skip
            bugs_v.append(("the new values go after the stored ones: torch.cat([self.v, v], dim=2)",
                           torch.cat([v, old_v], dim=2)))  # fmt: skip
        if values.shape == keys.shape:
            bugs_v.append(("update returns the keys twice: return (keys, values)", keys))
        step = f"after update {i} (new positions {', '.join(str(t) for t in _STEPS[:i])})"
        compare_tensors(got_k, keys, what=f"keys {step}", atol=0, rtol=0, likely_bugs=bugs_k)
        compare_tensors(got_v, values, what=f"values {step}", atol=0, rtol=0, likely_bugs=bugs_v)
        _length(store, keys.size(2), step, calls=i)
    if call(other.__len__) != 0:
        raise CheckFailure(
            say(
                (
                    "two LayerCache objects share their keys: updating one changed the other's "
                    "len. Each layer needs its own store: create it in __init__ (self.k = None), "
                    "not in the class body",
                    "a list or tensor written in the class body belongs to the class, so every "
                    "layer's cache appends to the same one",
                )
            )
        )
    _on_meta(cls)
    # The store inside the package's model: greedy ids with the cache = ids without it.
    model = _tiny_model(2)
    idx = torch.randint(0, 60, (2, 4), generator=torch.Generator().manual_seed(3))
    want = reference.generate(model, idx, 10, temperature=0)
    got = reference.generate(model, idx, 10, temperature=0, use_cache=True, layer_cache=cls)
    compare_tensors(got, want, what="greedy ids generated with your cache", atol=0, rtol=0)


def _on_meta(cls) -> None:
    """Fail when the store makes a tensor on the CPU, which meets a GPU's keys on Colab."""
    k = torch.empty(_B, _H, 2, _D, device="meta")
    store = cls()
    try:
        store.update(k, k)
        store.update(k[:, :, :1], k[:, :, :1])
    except Exception as e:
        if not _DEVICE_ERROR.search(str(e)):
            return  # other errors are judged by the tests on the CPU
        raise CheckFailure(
            "your cache makes a tensor on the CPU that meets the keys, which may be on a GPU: "
            "this passes on a CPU and fails on a GPU with 'Expected all tensors to be on the "
            "same device'. Make it on the keys' device (k.new_zeros(...), device=k.device), or "
            "store the first keys as they are"
        ) from None
