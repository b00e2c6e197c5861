"""Text generation: logits -> probabilities -> a token, one step at a time, with a KV cache.

``generate`` returns the prompt with the new tokens appended; ``stream`` yields each new
token as soon as it is chosen. Both crop the context to the model's last ``context_length``
tokens once the text outgrows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .cache import KVCache, LayerCache
from .model import check_id_dtype

# Temperatures this small put all the mass on the argmax anyway, but dividing by them
# overflows the logits to inf and the softmax to NaN (1e-40 crashed torch.multinomial):
# below it, sampling is greedy, exactly as temperature 0.
GREEDY_BELOW = 1e-5


def check_sampling_args(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Raise ``ValueError`` with a fix for a temperature, top_k or top_p that makes no sense."""
    if not isinstance(temperature, (int, float)) or temperature != temperature or temperature < 0:
        raise ValueError(
            f"temperature must be a number >= 0, got {temperature!r}; use 0 for greedy "
            "decoding, 1 for the model's own distribution"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1 (or None for no limit), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(
            f"top_p must be in (0, 1] (or None for no limit), got {top_p!r}; 0.9 keeps the "
            "smallest set of tokens holding 90% of the probability"
        )


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest (along the last dim) to -inf."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability adds up to at least p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    # A token goes when the tokens ranked above it already hold p; the top token never goes.
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution sampling draws from: temperature, then top-k, then top-p (as HF)."""
    check_sampling_args(temperature, top_k, top_p)
    if temperature < GREEDY_BELOW:  # greedy: all the mass on the argmax
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(torch.float32)
    logits = logits.float() / temperature  # below 1 sharpens, above 1 flattens
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    return F.softmax(logits, dim=-1)


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of ``logits`` (B, vocab) -> (B, 1); temperature 0 (or below
    ``GREEDY_BELOW``, 1e-5) is greedy."""
    check_sampling_args(temperature, top_k, top_p)
    if temperature < GREEDY_BELOW:  # 0, or so small that dividing by it overflows
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    probs = next_token_probs(logits, temperature, top_k, top_p)  # (B, vocab)
    if generator is not None and generator.device != probs.device:
        # A seeded CPU generator gives the same draws whatever device the model is on.
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).to(
            logits.device
        )
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


def _context(model) -> int:
    """How many positions the model sees: the rows of its position table."""
    return getattr(model, "module", model).wpe.num_embeddings  # (module: under DDP)


@torch.inference_mode()
def generate_step(
    model,
    idx: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step without a cache: (B, T) -> (B, T + 1), cropping to the last context_length."""
    idx_cond = idx[:, -_context(model) :]  # the model cannot see further back
    logits = model(idx_cond)  # (B, T, vocab)
    next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
    return torch.cat([idx, next_id], dim=1)


def check_prompt(idx: torch.Tensor, max_new_tokens: int, vocab_size: int | None = None) -> None:
    """Raise ``ValueError`` (``TypeError`` for ids that are not integers) for a prompt or
    length ``model(...)`` could not decode from: the one check both ``stream`` and ``FastGenerator`` run, so they refuse the same inputs."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        raise ValueError(
            "idx must be a (batch, time) tensor of token ids; for one prompt use "
            "torch.tensor([ids]) or idx[None]"
        )
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty: start from at least one token, e.g. <|endoftext|>")
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise ValueError(f"max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
    check_id_dtype(idx)  # TypeError, in the words the model's own forward uses
    if vocab_size is not None and idx.numel() and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(
            f"token ids must be in [0, {vocab_size}), got ids from {int(idx.min())} to "
            f"{int(idx.max())}; was the prompt encoded with this model's tokenizer?"
        )


def decode(
    step: Callable[[torch.Tensor, Any], torch.Tensor],
    idx: torch.Tensor,
    max_new_tokens: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
    context: int,
    eos_token: int | None = None,
    cache: Any = None,
) -> Iterator[torch.Tensor]:
    """The one decoding loop: yield each new token (B,) of ``idx`` (B, T) as it is chosen.

    ``step(tokens, cache)`` gives the (B, vocab) logits of the last of ``tokens``; ``pick``
    turns them into (B, 1) ids. Without a ``cache`` every step reads the whole window; with
    one, only the newest token. With ``eos_token``, a row that has produced it keeps
    producing it, and the loop stops once every row has.
    """
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    window = idx[:, -context:]  # (B, T'): the tokens the model can see
    fresh = True
    for _ in range(max_new_tokens):
        if cache is None:
            logits = step(window, None)
        elif not fresh and len(cache) < context:
            # The cache holds every earlier position: the newest token's query sees them all.
            logits = step(window[:, -1:], cache)
        else:
            # First step, or the text has outgrown the context: the cached keys were computed
            # at positions that are no longer the window's, so start again from the window.
            cache.reset()
            logits, fresh = step(window, cache), False
        next_id = pick(logits)  # (B, 1)
        if eos_token is not None:
            next_id = next_id.masked_fill(finished[:, None], eos_token)
            finished |= next_id[:, 0] == eos_token
        yield next_id[:, 0]  # (B,)
        window = torch.cat([window, next_id], dim=1)[:, -context:]
        if eos_token is not None and bool(finished.all()):
            return


def _sample(sampler, logits, temperature, top_k, top_p, generator) -> torch.Tensor:
    """(B, vocab) logits -> (B, 1) ids, with the package's sampler or the learner's."""
    if sampler is None:
        return sample_next_token(logits, temperature, top_k, top_p, generator)
    if top_p is not None:
        raise ValueError("your sample_next_token takes no top_p; leave top_p out to use it")
    if temperature < GREEDY_BELOW:  # the same greedy cut-off as the package's sampler
        temperature = 0
    next_id = sampler(logits, temperature=temperature, top_k=top_k, generator=generator)
    return next_id.reshape(logits.size(0), 1).long()


def stream(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token: int | None = None,
    use_cache: bool = False,
    generator: torch.Generator | None = None,
    sampler: Callable[..., torch.Tensor] | None = None,
    layer_cache: Callable[[], Any] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each new token, shape (B,), as soon as it is chosen (same arguments as generate).

    For one prompt, ``tok.item()`` is the new id.
    """
    check_sampling_args(temperature, top_k, top_p)
    config = getattr(getattr(model, "module", model), "config", None)
    check_prompt(idx, max_new_tokens, getattr(config, "vocab_size", None))
    if layer_cache is not None and not use_cache:
        raise ValueError(
            "layer_cache is the store a KV cache keeps for each layer: pass use_cache=True too"
        )
    idx = idx.to(device=next(model.parameters()).device, dtype=torch.long)
    cache = KVCache(len(model.h), layer_cache or LayerCache) if use_cache else None

    def step(tokens: torch.Tensor, cache) -> torch.Tensor:
        logits = model(tokens) if cache is None else model(tokens, cache=cache)
        return logits[:, -1]  # (B, vocab)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        return _sample(sampler, logits, temperature, top_k, top_p, generator)

    was_training = model.training
    model.eval()  # dropout off: generation must not be random beyond the sampling
    try:
        with torch.inference_mode():
            yield from decode(step, idx, max_new_tokens, pick, _context(model), eos_token, cache)
    finally:
        model.train(was_training)


def generate(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token: int | None = None,
    use_cache: bool = False,
    generator: torch.Generator | None = None,
    sampler: Callable[..., torch.Tensor] | None = None,
    layer_cache: Callable[[], Any] | None = None,
) -> torch.Tensor:
    """Append up to ``max_new_tokens`` sampled tokens to ``idx`` (B, T) -> (B, T + new).

    temperature 0 (or below ``GREEDY_BELOW``) is greedy; ``top_k``/``top_p`` cut the unlikely
    tail; generation stops early once every row has produced ``eos_token``. ``model`` is any
    module mapping ids (B, T) to logits (B, T, vocab), the package's GPT or yours;
    ``use_cache=True`` feeds it only the newest token with a ``KVCache`` (its forward must take
    ``cache=``, as the package's does). ``sampler`` is your ``sample_next_token(logits,
    temperature, top_k, generator)``; ``layer_cache`` is your ``LayerCache`` class, the store
    the cache keeps for each layer. The model runs in eval mode (its mode restored after).
    """
    args = (temperature, top_k, top_p, eos_token, use_cache, generator, sampler, layer_cache)
    new = list(stream(model, idx, max_new_tokens, *args))
    idx = idx.to(next(model.parameters()).device)
    return torch.cat([idx, torch.stack(new, dim=1)], dim=1) if new else idx.clone()


def sample_text(
    model,
    tokenizer,
    prompt: str = "\n",
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> str:
    """Text the model writes after ``prompt`` (seeded, so the same model gives the same text)."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty; give at least one character, e.g. '\\n'")
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, torch.tensor([ids]), max_new_tokens, temperature, top_k, generator=g)
    return tokenizer.decode(out[0, len(ids) :].tolist())
