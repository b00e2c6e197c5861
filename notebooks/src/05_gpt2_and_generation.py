# %% [markdown]
# Part 4 built the block. Stack `n_layer` of them between the embeddings of part 2 and the
# tied head, and that is GPT-2:
#
# ```
# idx (B, T) ─ wte + wpe ─ Block × n_layer ─ ln_f ─ lm_head ─▶ logits (B, T, vocab)
# ```
#
# A language model only ever answers one question: *what are the odds of each next
# token?* Writing text is asking that question again and again, each time appending one
# token chosen from the answer. This notebook covers:
#
# 1. assembling the model, and what a GPT-2 with **random weights** says (nothing useful);
# 2. from logits to probabilities, and choosing: greedy, **temperature**, **top-k**, **top-p**;
# 3. one generation step, the loop, streaming, stopping at `<|endoftext|>`;
# 4. what happens past the 1,024-token context;
# 5. the **KV cache**: why it helps, how it works, and proof that it changes nothing but speed.
#
# Exercises: the GPT module, sampling with temperature and top-k, one generation step, and the
# store each layer keeps its cached keys and values in. At the end, a playground to try the
# sampling settings by hand.
#
# *Machine time: the cells take about 2 minutes on a quiet 2-core CPU (measured 2026-12-06).*

# %% [markdown] instructor
# ⏱ About 80 minutes a learner (the guide's estimate: 15 reading, 67 for the exercises).
# Make the point early and often that this model's weights are random:
# its text is noise, and that is expected; real text comes in parts 6 and 7. The cache
# section is where questions come: draw the (T, T) attention matrix and show that one
# new token needs one new row, which needs every old key and value but no old query.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import checks, workbench
from gpt2course.assets import tiktoken_gpt2
from gpt2course.device import quick_mode
from gpt2course.figures import kv_cache_figure, model_figure
from gpt2course.cache import KVCache
from gpt2course.generation import filter_top_k, generate, next_token_probs, stream
from gpt2course.model import GPT as PackageGPT
from gpt2course.model import GPTConfig, lm_loss
from gpt2course.widgets.sampling import sampling_playground

# Quick mode: a narrow GPT with GPT-2's vocabulary and a 128-token context, so every cell
# runs in seconds on a CPU. The full setting is GPT-2 small's exact shape.
if quick_mode():
    config = GPTConfig(n_layer=2, n_head=4, n_embd=128, context_length=128)
else:
    config = GPTConfig.from_name("gpt2")
N_NEW = 30  # tokens to generate in the demos

enc = tiktoken_gpt2()
torch.manual_seed(0)

# %% [markdown]
# ## Assembling GPT-2
# Your `Block` from part 4 is on your workbench: every check that passed kept your code,
# and `workbench.use` rebuilds it here (with your attention and MLP inside), checks it
# again, and falls back to the reference for any piece that is missing, each on its own.

# %%
# NBVAL_IGNORE_OUTPUT
Block = workbench.use("Block")

# %% [markdown]
# The whole model, with the shapes of this notebook's config:

# %%
model_figure(config)
plt.show()

# %% [markdown]
# ### Exercise: the GPT module
# Stack the blocks between the embeddings of part 2 and the tied head of part 4:
#
# - `wte`: an `nn.Embedding` with a vector per token (`vocab_size × n_embd`), and `wpe` one
#   per position (`context_length × n_embd`); the input of the first block is their sum;
# - `h`: an `nn.ModuleList` of `n_layer` blocks (a plain list would hide their parameters
#   from the optimiser); `ln_f`: the final LayerNorm; `lm_head`: `nn.Linear(n_embd,
#   vocab_size, bias=False)` whose weight **is** `wte.weight`;
# - GPT-2's initialisation: every linear and embedding weight from $N(0, 0.02)$, biases 0,
#   and the two residual projections of each block (`c_proj`) scaled by $1/\sqrt{2 \cdot
#   n\_layer}$, so that the residual stream's variance does not grow with depth.
#
# `forward(idx)` takes token ids `(B, T)` and returns logits `(B, T, vocab)`. The names are
# GPT-2's checkpoint names: in part 7 OpenAI's weights load into *this* class.


# %%
class GPT(nn.Module):
    """GPT-2: token and position embeddings, n_layer blocks, ln_f, and a head tied to wte."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        # BEGIN SOLUTION
        # HINT: the same names as in GPT-2's checkpoint: wte, wpe, h, ln_f, lm_head.
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_length, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix reads tokens in and out
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # END SOLUTION

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, vocab) logits."""
        # BEGIN SOLUTION
        # HINT: the positions of a (B, T) input are 0 .. T-1, made on idx's device.
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)
        # END SOLUTION


# %%
GPT = checks.check_gpt(GPT, Block)

# %% [markdown] instructor
# ⏱ 15 minutes. Where learners stall: tying the head (an assignment of the Parameter, not a
# copy of its values), a plain list for `h` (its parameters vanish from `.parameters()`),
# the positions tensor on the wrong device (the check catches it without a GPU), an init
# that skips `wpe` (nn.Embedding's N(0, 1)), `[Block(config)] * n_layer` (one Block shared
# by every layer). `check_gpt(GPT, Block, hint=2)`
# gives the second-level hints. A learner whose Block failed in part 4 still gets a
# working model: the reference Block is used inside *their* GPT.

# %% [markdown]
# Built from a config, it starts with **random weights**. Which of its parts are your code?

# %%
# NBVAL_IGNORE_OUTPUT
model = GPT(config).eval()
print(workbench.describe(model))

# %% record:shape
n_params = sum(p.numel() for p in model.parameters())  # the tied matrix counts once
print(f"{n_params:,} parameters, {config.n_layer} blocks, width {config.n_embd}, "
      f"context {config.context_length}")  # fmt: skip
idx = torch.tensor([enc.encode("The meaning of life is")])  # (1, T)
logits = model(idx)  # (1, T, vocab): a prediction after every prefix
print("idx", tuple(idx.shape), "-> logits", tuple(logits.shape))

# %% [markdown]
# One row of logits per position: row `t` scores every candidate for token `t + 1`, having
# seen tokens `0..t` only (the causal mask). Training uses all the rows at once; generation
# needs only the last.
#
# How good are random weights? The cross-entropy loss against the right next tokens
# (part 6 writes it; here the package's `lm_loss`) measures it. A model that knows nothing spreads its bets evenly over
# the 50,257 tokens, and its loss is $\ln 50257 \approx 10.8$:

# %%
# NBVAL_IGNORE_OUTPUT
text = torch.tensor([enc.encode("To be, or not to be, that is the question.")])
loss = lm_loss(model(text[:, :-1]), text[:, 1:])
print(f"loss {loss.item():.2f}   vs ln(vocab) = {math.log(config.vocab_size):.2f}")

# %% [markdown]
# Just as expected: it knows nothing. So what does it write? (Every sample below comes
# from these random weights, **not** from GPT-2: it babbles. Part 6 trains a model, part 7
# loads OpenAI's.)

# %%
# NBVAL_IGNORE_OUTPUT
g = torch.Generator().manual_seed(0)
out = generate(model, idx, max_new_tokens=N_NEW, generator=g)
print(repr(enc.decode(out[0].tolist())))

# %% [markdown]
# ## From logits to probabilities
# Softmax turns the last row of logits into a distribution over the vocabulary. For our
# random model it is almost flat: the top tokens barely beat $1/50257 \approx 0.00002$.

# %%
# NBVAL_IGNORE_OUTPUT
probs = F.softmax(logits[0, -1], dim=-1)  # (vocab,)
top = torch.topk(probs, 5)
for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True):
    print(f"{enc.decode([i])!r:>16}  {p:.6f}")

# %% [markdown]
# A flat distribution teaches nothing about the knobs, so for the next plots we make up
# the logits a trained model might give after "The cat sat on the":

# %%
words = [" mat", " floor", " sofa", " bed", " roof", " moon", " keyboard", " banana"]
toy = torch.tensor([4.0, 3.2, 2.9, 2.5, 1.5, 0.3, 0.0, -1.0])  # made-up logits


def bars(ax, probs, title, kept=None):
    """Bar chart of a distribution over the toy words; tokens not kept in grey."""
    kept = [True] * len(words) if kept is None else kept
    ax.bar(range(len(words)), probs, color=["C0" if k else "lightgrey" for k in kept])
    ax.set_xticks(range(len(words)), [w.strip() for w in words], rotation=60, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)


# %% [markdown]
# ### Greedy decoding
# The simplest choice: always take the most likely token, `argmax`. It is deterministic,
# and it is dull: a trained model decoding greedily soon repeats itself ("the the the...",
# or the same sentence over and over), because the likeliest continuation of a loop is
# more loop.
#
# ### Temperature
# Sampling instead draws from the distribution, so unlikely tokens get their chance.
# **Temperature** divides the logits before the softmax: below 1 it sharpens the
# distribution towards greedy (temperature 0 *is* greedy), above 1 it flattens it towards
# uniform noise.

# %%
fig, axes = plt.subplots(1, 4, figsize=(11, 2.6), sharey=True)
for ax, t in zip(axes, [0.0, 0.5, 1.0, 2.0], strict=True):
    bars(ax, next_token_probs(toy, temperature=t), f"temperature {t}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Top-k and top-p
# Even at temperature 1, the long tail of 50,000 unlikely tokens holds real probability
# mass; sample long enough and you hit " banana". Two ways to cut the tail:
#
# - **top-k** keeps the `k` most likely tokens, then renormalises;
# - **top-p** (nucleus sampling) keeps the smallest set of most likely tokens whose
#   probabilities add up to at least `p`. When the model is sure, that is one or two
#   tokens; when it hesitates, many. It adapts where top-k cannot.
#
# Grey tokens below are cut: they can never be sampled.

# %%
settings = [dict(top_k=3), dict(top_p=0.8), dict(top_p=0.95)]
fig, axes = plt.subplots(1, 3, figsize=(9, 2.6), sharey=True)
for ax, kw in zip(axes, settings, strict=True):
    q = next_token_probs(toy, temperature=1.0, **kw)  # renormalised over the kept tokens
    bars(
        ax,
        next_token_probs(toy),
        ", ".join(f"{k}={v}" for k, v in kw.items()),
        kept=(q > 0).tolist(),
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Exercise: sample the next token
# Write `sample_next_token` for a batch of logits `(B, vocab)`: temperature 0 means greedy;
# otherwise divide by the temperature, keep the `top_k` largest logits when asked (set the
# others to `-inf`, so softmax gives them 0), softmax, and draw with `torch.multinomial`.
# Pass `generator` on, so that a seeded generator gives the same tokens every run.
# Return `(B, 1)`: one id per row, as a column, ready to append to `idx`.


# %%
def sample_next_token(logits, temperature=1.0, top_k=None, generator=None):
    """One token id per row of logits (B, vocab) -> (B, 1)."""
    # BEGIN SOLUTION
    # HINT: each row's k-th largest logit is the threshold; torch.topk finds it.
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)  # (B, vocab)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
    # END SOLUTION


# %%
sample_next_token = checks.check_sample_next_token(sample_next_token)

# %% [markdown]
# Draw from the toy distribution many times: the frequencies follow the bars, and
# " banana" never shows up with top-k 3.

# %%
# NBVAL_IGNORE_OUTPUT
draws = sample_next_token(toy.repeat(2000, 1), temperature=1.0, top_k=3,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
counts = torch.bincount(draws[:, 0], minlength=len(words))
print({w.strip(): int(c) for w, c in zip(words, counts, strict=True)})

# %% [markdown]
# ## Exercise: one generation step
# One step of the loop: run the model on the sequence so far, take the logits of the
# **last** position, sample a token, append it. One catch: the model has `context_length`
# position embeddings (1,024 for GPT-2) and cannot read more, so feed it only the last
# `context_length` tokens, while still returning the whole sequence plus the new token.


# %%
@torch.no_grad()
def generate_step(model, idx, temperature=1.0, top_k=None, generator=None):
    """(B, T) -> (B, T + 1): one token sampled from the model, appended."""
    # BEGIN SOLUTION
    # HINT: crop to the model's context, keep the last position's logits, sample, append.
    idx_cond = idx[:, -model.config.context_length :]  # what the model can see
    logits = model(idx_cond)  # (B, T, vocab)
    next_id = sample_next_token(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
    return torch.cat([idx, next_id], dim=1)
    # END SOLUTION


# %%
generate_step = checks.check_generate_step(generate_step)

# %% [markdown]
# The whole of text generation is this step in a loop:

# %%
# NBVAL_IGNORE_OUTPUT
g = torch.Generator().manual_seed(0)
seq = idx
for _ in range(N_NEW):
    seq = generate_step(model, seq, temperature=0.8, top_k=50, generator=g)
print(repr(enc.decode(seq[0].tolist())))

# %% [markdown]
# The library's `generate(model, idx, max_new_tokens, temperature, top_k, top_p,
# eos_token, use_cache, generator)` is that loop with the rest of this notebook inside.
# `stream(...)`, with the same arguments, yields each token as soon as it is chosen, the
# way chat interfaces print text as it comes:

# %%
# NBVAL_IGNORE_OUTPUT
g = torch.Generator().manual_seed(1)
for tok in stream(model, idx, max_new_tokens=N_NEW, temperature=0.9, top_p=0.9, generator=g):
    print(enc.decode([tok.item()]), end="", flush=True)
print()

# %% [markdown]
# ## Stopping at `<|endoftext|>`
# GPT-2 was trained on documents joined by a special token, `<|endoftext|>` (id
# `enc.eot_token` = 50256). A trained model emits it when it thinks the text is finished,
# and `generate(..., eos_token=enc.eot_token)` stops there. In a batch, a row that has
# finished keeps receiving the end token while the others go on, and generation stops
# when every row is done.
#
# Our random model does not know when a text is finished, so we play the trained model's
# part by hand: a sampler that is your `sample_next_token`, except that the end token is
# never picked by chance (its logit is set to -inf) and row 0 picks it as its 5th new
# token, as if it had decided that its text was done. So every end token below was put
# there on purpose, and "stopped" can be told from "still generating".

# %%
# NBVAL_IGNORE_OUTPUT
EOT = enc.eot_token  # 50256, "<|endoftext|>"


def ends_after(n: int, row: int = 0):
    """Your sampler with the end token ruled out, except as row ``row``'s ``n``-th new token."""
    step = 0

    def sampler(logits, **kwargs):
        nonlocal step
        step += 1
        logits = logits.clone()
        logits[:, EOT] = float("-inf")  # never by accident
        ids = sample_next_token(logits, **kwargs).reshape(-1).clone()  # (B,)
        if step == n:
            ids[row] = EOT  # the "decision" to stop
        return ids

    return sampler


prompts = torch.tensor([enc.encode(" Once upon a"), enc.encode(" The best way to")[:3]])  # (2, 3)
one = generate(model, prompts[:1], 12, temperature=0, eos_token=EOT, sampler=ends_after(5))
print(f"one prompt: stopped after {one.shape[1] - 3} of 12 new tokens:")
print("   ", repr(enc.decode(one[0].tolist())))
both = generate(model, prompts, 12, temperature=0, eos_token=EOT, sampler=ends_after(5))
print(f"two prompts: {tuple(both.shape)}, row 1 ran all 12 steps and row 0 was padded with the end token:")
for row in both:
    print("   ", repr(enc.decode(row.tolist())))

# %% [markdown]
# ## The package's GPT
# From here on the notebook uses `gpt2course.model.GPT`: the same model as yours, plus the
# KV cache of the last section and errors that say what to do. Because your model uses
# GPT-2's names, its weights load into it as they are:

# %%
cached = PackageGPT(config).eval()
cached.load_state_dict(model.state_dict())
print("same logits:", torch.allclose(cached(idx), model(idx), atol=1e-5))

# %% [markdown]
# ## Past the context window
# `wpe` holds one vector per position, `context_length` of them (1,024 for GPT-2). There is no
# vector for position 1,025, so the model refuses longer inputs:

# %%
too_long = torch.randint(0, config.vocab_size, (1, config.context_length + 1))
try:
    cached(too_long)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# Generation keeps going anyway by **cropping**: each step, the model sees only the last
# `context_length` tokens. The window slides along the text, and whatever falls off the
# start is forgotten: the model can no longer attend to it. (That is why GPT-2 loses the
# thread of long texts; newer models have longer windows, not a way around the limit.)

#
# To see it in seconds, not minutes, the next cells use a small model with a 32-token window
# (GPT-2 small would redo a 1,024-token window at every step: several seconds each on a CPU).

# %%
torch.manual_seed(0)
short = PackageGPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, context_length=32)).eval()
long_prompt = torch.randint(0, short.config.vocab_size, (1, short.config.context_length - 10))
out = generate(short, long_prompt, 25, temperature=0)
print(f"prompt {long_prompt.shape[1]} tokens + 25 new = {out.shape[1]} tokens "
      f"(context {short.config.context_length})")  # fmt: skip

# %% [markdown]
# ## The KV cache
# Generating token by token with `generate_step` redoes a lot of work. At step `t` the model
# computes queries, keys and values for all `t` positions, but only the **last** query is
# needed (we use the last row of logits), and the keys and values of the first `t - 1`
# positions are exactly what the previous step computed: causal attention means old
# positions never see new tokens, so nothing about them changes.
#
# So keep them. Each layer stores its keys and values, `(B, n_head, T, head_dim)` each;
# the next step feeds **only the new token**, whose query attends to the stored keys plus
# its own. Per step the work drops from the whole sequence to one token. In our `GPT` the
# cache is an object you pass in, and the model fills it:
#
# - `cache = KVCache(n_layer)` is empty: one keys-and-values store per layer;
# - `logits = cached(idx, cache=cache)` runs the prompt and stores its keys and values;
# - `logits = cached(new_ids, cache=cache)` runs only `new_ids`, at the positions after the
#   cached ones; their queries see every cached key, and their own keys join the cache.

# %%
kv_cache_figure(prompt=4, steps=3)
plt.show()

# %% [markdown]
# ## Exercise: the cache's store
# Write the store that each layer keeps, `LayerCache`. Its `update(k, v)` gets the keys and
# values of the new positions, `(B, n_head, T_new, head_dim)` each, appends them after the
# stored ones along the **time axis**, and returns all of them, `(B, n_head, T_past + T_new,
# head_dim)` each: the attention layer attends with what it returns. `len(store)` is the
# number of positions stored, 0 for a new one.
#
# The rest is given: `KVCache(n_layer, layer=LayerCache)` makes one store per layer (each
# layer its own), reads the next positions from `len`, and adds the mask the prompt needs
# (its queries, fed at once, must not see its later keys).


# %%
class LayerCache:
    """One layer's keys and values so far, (B, n_head, T, head_dim) each."""

    def __init__(self):
        self.k = None  # nothing is stored until the first update
        self.v = None

    def __len__(self) -> int:
        """How many positions are stored."""
        # BEGIN SOLUTION
        # HINT: positions run along dim 2, the time axis.
        return 0 if self.k is None else self.k.size(2)
        # END SOLUTION

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values (B, n_head, T_new, head_dim); return all of them."""
        # BEGIN SOLUTION
        # HINT: torch.cat along the time axis, the stored positions first.
        if self.k is not None:
            k = torch.cat([self.k, k], dim=2)  # (B, n_head, T_past + T_new, head_dim)
            v = torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v
        # END SOLUTION


# %%
LayerCache = checks.check_layer_cache(LayerCache)  # kept on your workbench for part 7

# %% [markdown] instructor
# ⏱ 10 minutes. Where learners stall: the axis of `torch.cat` (time is dim 2 of
# `(B, n_head, T, head_dim)`), returning only the new keys, appending the keys but not the
# values, and a `len` that counts calls of `update` instead of positions.

# %% [markdown]
# Your `GPT`'s attention (part 3's exercise) takes no cache, so cached generation runs the
# package's `GPT`, `cached`, which holds your model's weights. The stores in it are yours
# when your `LayerCache` passed its check:

# %%
whose = "the reference's" if checks.is_handed_back(LayerCache) else "your"
print(f"The cache below keeps {whose} LayerCache in each layer.")
cache = KVCache(config.n_layer, layer=LayerCache)
logits = cached(idx, cache=cache)  # the prompt, once
print(f"{len(cache.layers)} layers; after the prompt the cache holds {len(cache)} positions")
next_id = logits[:, -1:].argmax(-1)  # (1, 1)
logits2 = cached(next_id, cache=cache)  # the newest token only
print("after one more token: logits", tuple(logits2.shape), f"and {len(cache)} positions")

# %% [markdown]
# `generate(..., use_cache=True, layer_cache=LayerCache)` runs the whole loop with your
# stores, as `sampler=` runs it with your sampler. (Your `generate_step` is not carried
# further: `generate` has the same step in its one loop, which `stream` and part 7's fast
# decoder share.)
#
# ### Proof that the cache changes nothing but speed
# Same ids, greedy or sampled with the same seed, with and without the cache; and the
# logits agree to float rounding.

# %%
prompt = torch.tensor([enc.encode("The meaning of life is"), enc.encode("Hello, my name is")[:5]])
for kw in [dict(temperature=0), dict(temperature=1.0, top_k=40)]:
    a = generate(
        cached, prompt, N_NEW, use_cache=True, layer_cache=LayerCache,
        generator=torch.Generator().manual_seed(0), **kw,
    )  # fmt: skip
    b = generate(
        cached, prompt, N_NEW, use_cache=False, generator=torch.Generator().manual_seed(0), **kw
    )
    print(kw, f"same ids with and without {whose} cache:", torch.equal(a, b))
    assert torch.equal(a, b)

# %% [markdown]
# The cache holds exactly what the full forward would recompute: the last token's logits agree.

# %%
# NBVAL_IGNORE_OUTPUT
seq = a
full = cached(seq)  # (B, T, vocab): everything recomputed
cache = KVCache(config.n_layer, layer=LayerCache)
cached(seq[:, :-1], cache=cache)
step = cached(seq[:, -1:], cache=cache)  # (B, 1, vocab): the last token only
print("largest logit difference:", f"{(full[:, -1:] - step).abs().max().item():.1e}")
assert torch.allclose(full[:, -1:], step, atol=1e-4)

# %% [markdown]
# And the speed: the running time while generating a longer text, with and without the
# cache. Without it every step redoes the whole text, so each step costs more than the
# last and the total bends upwards; with it, every step costs about the same. (In quick
# mode our model is so small that fixed per-step costs hide the difference, so we time a
# wider random model with a small vocabulary, whose blocks dominate as GPT-2's do.)


# %%
# NBVAL_IGNORE_OUTPUT
def running_time(timed_model: PackageGPT, use_cache: bool, n: int) -> list[float]:
    """Seconds elapsed after each generated token."""
    times, t0 = [], time.perf_counter()
    start = torch.tensor([[0]])
    kw = dict(use_cache=True, layer_cache=LayerCache) if use_cache else {}  # your stores
    for _ in stream(timed_model, start, n, temperature=0, **kw):
        times.append(time.perf_counter() - t0)
    return times


if quick_mode():
    timed = PackageGPT(
        GPTConfig(n_layer=4, n_head=4, n_embd=256, context_length=256, vocab_size=1000)
    )
    n = 150
else:
    timed, n = cached, 100  # GPT-2 small on a laptop CPU: about a minute without the cache
with_cache, without = running_time(timed, True, n), running_time(timed, False, n)
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(range(1, n + 1), without, label="without cache")
ax.plot(range(1, n + 1), with_cache, label="with KV cache")
ax.set_xlabel("tokens generated")
ax.set_ylabel("seconds so far")
ax.legend()
ax.set_title("Generating with and without the cache")
plt.tight_layout()
plt.show()
print(f"{n} tokens: {without[-1]:.2f} s without the cache, {with_cache[-1]:.2f} s with it")

# %% [markdown]
# ### The cache past the context
# When the text outgrows `context_length`, the window slides, and that spoils the cache: each
# cached key was computed with its token's old position embedding, and after a slide every
# token sits one position earlier. So `generate` does what the no-cache loop does: once
# the window is full, it rebuilds the cache from the cropped window. The results stay
# identical; only past the limit does the cache stop saving work. (`python -m gpt2course
# bench generate` measures the speed-up on GPT-2's real shape.)

# %%
start = torch.randint(0, short.config.vocab_size, (1, short.config.context_length - 5))
a = generate(short, start, 15, temperature=0, use_cache=True, layer_cache=LayerCache)
b = generate(short, start, 15, temperature=0, use_cache=False)
print(
    f"{a.shape[1]} tokens, past the context of {short.config.context_length}; same ids:",
    torch.equal(a, b),
)
assert torch.equal(a, b)

# %% [markdown]
# ## The sampling playground
# Type a prompt, move the sliders, watch the next-token distribution change; blue tokens
# can be sampled, grey ones are cut. "Sample one token" appends a draw to the prompt.
# With our random model the bars are nearly flat; run this again in part 6 with the model
# you train, or in part 7 with GPT-2 itself, and it comes alive.

# %%
# NBVAL_IGNORE_OUTPUT
sampling_playground(model, enc, prompt="The meaning of life is")
