"""The checks of notebook 05: sampling, one generation step, the KV cache."""

import pytest
import torch
import torch.nn.functional as F

from gpt2course import checks
from gpt2course import generation as ref
from gpt2course.cache import KVCache

from .conftest import assert_right, assert_stub, assert_wrong

# --- sample_next_token ------------------------------------------------------------------------


def sample(logits, temperature=1.0, top_k=None, generator=None, bug=None):
    if temperature == 0 and bug != "div_zero":
        return logits.argmax(-1) if bug == "flat" else logits.argmax(-1, keepdim=True)
    if bug == "greedy":
        return logits.argmax(-1, keepdim=True)
    if bug != "t_after":
        logits = logits * temperature if bug == "times_t" else logits / temperature
    if top_k is not None and bug != "no_top_k":
        k = {"k_plus_1": top_k + 1, "k_minus_1": top_k - 1}.get(bug, top_k)
        if bug != "no_min":
            k = min(k, logits.size(-1))
        if bug == "topk_positions":  # samples a rank among the top k, not a token id
            values = torch.topk(logits, k).values
            return torch.multinomial(F.softmax(values, -1), 1, generator=generator)
        kth = torch.topk(logits, k).values[:, [-1]]
        if bug == "row0":
            kth = kth[0]
        logits = logits.masked_fill(logits < kth, 0.0 if bug == "zero_cut" else float("-inf"))
    probs = F.softmax(logits, dim=0 if bug == "softmax_dim0" else -1)
    if bug == "t_after":
        probs = probs / temperature
        probs = probs / probs.sum(-1, keepdim=True)
    gen = None if bug == "no_generator" else generator
    return torch.multinomial(probs, 1, generator=gen)


def sample_in_place(logits, temperature=1.0, top_k=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits /= temperature
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)


SAMPLE_WRONG = [
    ("times_t", "multiplied by the temperature"),
    ("t_after", "the temperature has no effect"),
    ("no_top_k", "top-k is not applied"),
    ("k_plus_1", "top-k keeps k + 1 tokens"),
    ("k_minus_1", "top-k keeps k - 1 tokens"),
    ("zero_cut", "set them to float('-inf')"),
    ("row0", "its own k-th largest"),
    ("greedy", "always greedy"),
    ("no_generator", "pass generator=generator"),
    ("div_zero", "temperature 0 raised"),
    ("flat", "return (B, 1)"),
    ("no_min", "min(top_k"),
    ("softmax_dim0", "a softmax over the batch axis"),
    ("topk_positions", "map the sampled position back"),
]


@pytest.mark.parametrize("bug, expect", SAMPLE_WRONG, ids=[b for b, _ in SAMPLE_WRONG])
def test_sample_wrong_solutions_are_named(bug, expect):
    assert_wrong(
        checks.check_sample_next_token,
        lambda logits, temperature=1.0, top_k=None, generator=None: sample(
            logits, temperature, top_k, generator, bug
        ),
        expect,
    )


def test_sample_in_place_is_named():
    assert_wrong(checks.check_sample_next_token, sample_in_place, "`logits` in place")


def sample_from_topk(logits, temperature=1.0, top_k=None, generator=None):
    """Right, another way: sample among the top-k values, then map back to ids."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    k = min(top_k or logits.size(-1), logits.size(-1))
    values, ids = torch.topk(logits / temperature, k)
    choice = torch.multinomial(values.softmax(-1), 1, generator=generator)
    return ids.gather(-1, choice)


# --- generate_step ----------------------------------------------------------------------------


def step(model, idx, temperature=1.0, top_k=None, generator=None, bug=None):
    n = model.config.context_length
    cond = {"no_crop": idx, "first": idx[:, :n], "crop_minus_1": idx[:, -(n - 1) :]}.get(
        bug, idx[:, -n:]
    )
    if bug == "drop_earlier":
        idx = cond
    with torch.no_grad():
        logits = model(cond)
    pos = 0 if bug == "first_pos" else -1
    if bug == "greedy":
        temperature = 0.0
    if bug == "no_top_k":
        top_k = None
    if bug == "no_generator":
        generator = None
    last = logits[:, pos, :]
    if bug == "t_twice" and temperature > 0:
        last = last / temperature
    if bug == "swapped" and top_k is not None:
        temperature, top_k = top_k, int(temperature)
    nxt = ref.sample_next_token(last, temperature, top_k, None, generator)
    if bug == "only_new":
        return nxt
    if bug == "flat":
        nxt = nxt[:, 0]
    return torch.cat([idx, nxt], dim=0 if bug == "dim0" else 1)


STEP_WRONG = [
    ("only_new", "only the new token is returned"),
    ("first_pos", "first position's logits"),
    ("no_crop", "feed it only the last ones"),
    ("first", "keeps the first context_length tokens"),
    ("drop_earlier", "dropped the earlier tokens"),
    ("greedy", "always greedy"),
    ("no_top_k", "top_k is not passed on"),
    ("no_generator", "equally seeded generators"),
    ("flat", "make it a column"),
    ("dim0", "append along the time axis"),
    ("crop_minus_1", "context_length - 1"),
    ("t_twice", "temperature is applied twice"),
    ("swapped", "temperature and top_k are swapped"),
]


@pytest.mark.parametrize("bug, expect", STEP_WRONG, ids=[b for b, _ in STEP_WRONG])
def test_generate_step_wrong_solutions_are_named(bug, expect):
    assert_wrong(
        checks.check_generate_step,
        lambda model, idx, temperature=1.0, top_k=None, generator=None: step(
            model, idx, temperature, top_k, generator, bug
        ),
        expect,
    )


# --- generate_with_cache ----------------------------------------------------------------------


@torch.no_grad()
def cached(model, idx, n, bug=None):
    cache = KVCache(len(model.h))
    logits = model(idx, cache=cache)
    out = idx
    steps = {"fewer": n - 1, "more": n + 1}.get(bug, n)
    for _ in range(steps):
        nxt = logits[:, -1:].argmax(-1)
        out = torch.cat([out, nxt], 1)
        if bug == "no_cache":
            logits = model(nxt)
        elif bug == "new_cache":
            logits = model(nxt, cache=KVCache(len(model.h)))
        elif bug == "whole":
            logits = model(out)
        elif bug == "whole_with_cache":
            logits = model(out, cache=cache)
        else:
            logits = model(nxt, cache=cache)
    return out[:, idx.size(1) :] if bug == "only_new" else out


CACHE_WRONG = [
    ("no_cache", "pass cache=cache at every step"),
    ("new_cache", "make one KVCache before the loop"),
    ("whole_with_cache", "tokens the cache already holds are fed again"),
    ("whole", "the whole sequence is fed at every step"),
    ("fewer", "one token too few"),
    ("more", "one token too many"),
    ("only_new", "only the new tokens are returned"),
]


@pytest.mark.parametrize("bug, expect", CACHE_WRONG, ids=[b for b, _ in CACHE_WRONG])
def test_generate_with_cache_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_generate_with_cache, lambda m, i, n: cached(m, i, n, bug), expect)


RIGHT = [
    (checks.check_sample_next_token, lambda lo, temperature=1.0, top_k=None, generator=None: sample(lo, temperature, top_k, generator)),
    (checks.check_sample_next_token, sample_from_topk),
    (checks.check_generate_step, lambda m, i, temperature=1.0, top_k=None, generator=None: step(m, i, temperature, top_k, generator)),
    (checks.check_generate_with_cache, cached),
    # the library's generate needs the model's attributes: the check must not hide them
    (checks.check_generate_with_cache, lambda m, i, n: ref.generate(m, i, n, temperature=0, use_cache=True)),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize(
    "check",
    [checks.check_sample_next_token, checks.check_generate_step, checks.check_generate_with_cache],
)
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
