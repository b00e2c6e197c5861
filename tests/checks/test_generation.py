"""The checks of notebook 05: sampling, one generation step, the KV cache's store."""

import pytest
import torch
import torch.nn.functional as F

from gpt2course import checks
from gpt2course import generation as ref

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


# --- LayerCache -------------------------------------------------------------------------------


class Store:
    """The learner's LayerCache, right unless ``bug`` names one of their likely mistakes."""

    bug = None

    def __init__(self):
        self.k = self.v = None
        self.calls = 0

    def __len__(self):
        if self.bug == "len_calls":
            return self.calls
        if self.bug == "len_batch":
            return 0 if self.k is None else self.k.size(0)
        if self.bug == "len_no_none":
            return self.k.size(2)
        return 0 if self.k is None else self.k.size(2)

    def update(self, k, v):
        self.calls += 1
        dim = {"dim_heads": 1, "dim_last": -1}.get(self.bug, 2)
        new_k, new_v = k, v
        if self.k is None and self.bug == "cpu_empty":
            self.k = torch.zeros(k.size(0), k.size(1), 0, k.size(3))
            self.v = torch.zeros(v.size(0), v.size(1), 0, v.size(3))
        if self.k is not None and self.bug != "overwrite":  # overwrite: self.k = k, no cat
            first = (k, self.k) if self.bug == "new_first" else (self.k, k)
            k = torch.cat(first, dim=dim)
            if self.bug != "forget_v":
                v = torch.cat((v, self.v) if self.bug == "new_first" else (self.v, v), dim=dim)
        self.k, self.v = k, v
        if self.bug == "only_new":
            return new_k, new_v
        if self.bug == "k_twice":
            return k, k
        if self.bug == "with_mask":
            return k, v, None
        if self.bug == "no_return":
            return None
        return k, v


class SharedStore:
    """A class-level list: every layer's cache appends to the same one."""

    keys, values = [], []

    def __len__(self):
        return sum(k.size(2) for k in self.keys)

    def update(self, k, v):
        self.keys.append(k)
        self.values.append(v)
        return torch.cat(self.keys, dim=2), torch.cat(self.values, dim=2)


def store_with(bug):
    return type(f"LayerCache_{bug}", (Store,), {"bug": bug})


STORE_WRONG = [
    ("dim_heads", "joined along the wrong axis"),
    ("dim_last", "joined along the wrong axis"),
    ("only_new", "update returns only the new keys"),
    ("overwrite", "update returns only the new keys"),
    ("forget_v", "update returns only the new values"),
    ("new_first", "the new keys go after the stored ones"),
    ("k_twice", "returns the keys twice"),
    ("len_calls", "it counts the calls of update"),
    ("len_batch", "it counts the batch"),
    ("len_no_none", "len() of an empty cache is 0"),
    ("with_mask", "the model adds the mask itself"),
    ("no_return", "update should return two tensors"),
    ("cpu_empty", "makes a tensor on the CPU"),
]


@pytest.mark.parametrize("bug, expect", STORE_WRONG, ids=[b for b, _ in STORE_WRONG])
def test_layer_cache_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_layer_cache, store_with(bug), expect)


def test_layer_cache_shared_between_layers_is_named():
    SharedStore.keys, SharedStore.values = [], []
    assert_wrong(checks.check_layer_cache, SharedStore, "share their keys")


class ListStore:
    """Right, another way: a list of chunks, joined when asked; len counts as it goes."""

    def __init__(self):
        self.ks, self.vs, self.T = [], [], 0

    def __len__(self):
        return self.T

    def update(self, k, v):
        self.ks.append(k)
        self.vs.append(v)
        self.T += k.shape[-2]
        return torch.cat(self.ks, dim=-2), torch.cat(self.vs, dim=-2)


class EmptyFirstStore:
    """Right, another way: start from empty tensors made like the first keys (same device)."""

    def __init__(self):
        self.cache = None

    def __len__(self):
        return 0 if self.cache is None else self.cache[0].shape[2]

    def update(self, k, v):
        if self.cache is None:
            empty = k.new_zeros(k.shape[0], k.shape[1], 0, k.shape[3])
            self.cache = (empty, empty.clone())
        self.cache = tuple(
            torch.cat([old, new], 2) for old, new in zip(self.cache, (k, v), strict=True)
        )
        return self.cache


class StubStore:
    """The notebook's exercise before it is done: __init__ is given, the rest is not."""

    def __init__(self):
        self.k = self.v = None

    def __len__(self):
        raise NotImplementedError

    def update(self, k, v):
        raise NotImplementedError


def test_layer_cache_stub_is_not_done_yet():
    assert_stub(checks.check_layer_cache, StubStore)


RIGHT = [
    (checks.check_sample_next_token, lambda lo, temperature=1.0, top_k=None, generator=None: sample(lo, temperature, top_k, generator)),
    (checks.check_sample_next_token, sample_from_topk),
    (checks.check_generate_step, lambda m, i, temperature=1.0, top_k=None, generator=None: step(m, i, temperature, top_k, generator)),
    (checks.check_layer_cache, Store),
    (checks.check_layer_cache, ListStore),
    (checks.check_layer_cache, EmptyFirstStore),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize(
    "check",
    [checks.check_sample_next_token, checks.check_generate_step],
)
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
