# %% [markdown]
# After part 2 every token is a vector, `(B, T, C)`, but each vector knows only its own
# token and position. To predict what comes after "the cat sat on the", the vector at
# "the" must gather information from "cat" and "sat". **Attention** is how: each token
# takes a weighted average of the tokens before it, with weights it computes itself.
#
# We build it in small steps, from a dot product to GPT-2's exact layer:
#
# 1. dot products as similarity, softmax, the weights for one query;
# 2. all queries at once, as matrix products; scaling by $\sqrt{d}$;
# 3. the causal mask, dropout on the weights, and keeping it all numerically stable;
# 4. trainable query, key and value projections; several heads;
# 5. GPT-2's form: one fused `c_attn` projection, heads, then `c_proj`.
#
# Exercises: scaled dot-product attention, the causal mask, splitting and merging heads,
# the full multi-head module, and your attention again on torch's fused kernel. At the end,
# an interactive viewer of attention patterns.
#
# *Machine time: the cells take about 11 seconds on a quiet 2-core CPU (measured 2026-12-06).*

# %% [markdown] instructor
# ⏱ About 65 minutes a learner (the guide's estimate: 14 reading, 50 for the exercises).
# This is the heart of the course. Live-code the one-query version
# first (cells up to "All queries at once") before letting learners loose on the
# exercises. Where they stall: the softmax axis, and the transpose in `merge_heads`.

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
from gpt2course.figures import heads_figure
from gpt2course.model import GPT, GPTConfig
from gpt2course.widgets.attention import attention_viewer, attention_weights, heatmap_html

# Sizes for the speed comparison near the end; the full setting is GPT-2's context.
T_BENCH = 256 if quick_mode() else 1024

enc = tiktoken_gpt2()

# %% [markdown]
# ## Dot products as similarity
# The dot product of two vectors is large when they point the same way, near zero when
# they are unrelated, negative when they point apart. That makes it a cheap similarity
# score. Take a short sentence and give each token a random 4-number vector, standing in
# for its embedding:

# %%
torch.manual_seed(0)
tokens = [enc.decode([i]) for i in enc.encode(" the cat sat on the mat")]
T, d = len(tokens), 4
x = torch.randn(T, d)  # (T, d): one vector per token
print(tokens)

# %% [markdown]
# ## The weights for one query
# Say the token at position 4 (the second " the") wants to gather information. It is the
# **query**. Its score for every token is a dot product; softmax turns the scores into
# **weights** that are positive and sum to 1; the output is the weighted average of the
# token vectors.

# %%
# NBVAL_IGNORE_OUTPUT
query = x[4]  # (d,)
scores = x @ query  # (T,): one similarity per token
weights = torch.softmax(scores, dim=0)  # (T,), sums to 1
context = weights @ x  # (d,): the weighted average
for tok, s, w in zip(tokens, scores, weights, strict=True):
    print(f"{tok!r:>8}  score {s:+.2f}  weight {w:.2f}")
print("weights sum to", round(weights.sum().item(), 6))

# %% [markdown]
# The query mostly finds itself: a vector is always quite similar to itself. The learned
# projections further down separate "what I look for" from "what I am", which fixes that.
#
# ## All queries at once
# Every token can be a query. Stacking the queries as rows turns the dot products into one
# matrix product: `scores[i, j]` is how much token `i` cares about token `j`, and softmax
# runs along each row (`dim=-1`), so that each query's weights sum to 1.

# %%
scores = x @ x.T  # (T, T)
weights = torch.softmax(scores, dim=-1)  # (T, T), each row sums to 1
out = weights @ x  # (T, d): one context vector per token
print(torch.allclose(out[4], context))

# %% [markdown]
# ## Why divide by $\sqrt{d}$
# With random vectors of `d` numbers each, a dot product is a sum of `d` terms, so its
# spread grows like $\sqrt{d}$. With GPT-2's 64 numbers per head (each of spread 1), the raw
# scores have a spread of $\sqrt{64} = 8$: differences of 10 or 20 between two scores are
# common, and softmax of such scores is nearly one-hot: one token takes all the weight,
# and the gradients through the others vanish. Dividing by $\sqrt{d}$ brings the scores
# back to a spread of about 1, whatever `d` is.

# %%
d_big = 512
q1, k1 = torch.randn(d_big), torch.randn(8, d_big)
raw = k1 @ q1  # (8,)
fig, axes = plt.subplots(1, 2, figsize=(8, 2.2), sharey=True)
for ax, s, title in [
    (axes[0], raw, f"unscaled (score std {raw.std():.0f})"),
    (axes[1], raw / math.sqrt(d_big), f"divided by sqrt({d_big})"),
]:
    ax.bar(range(8), torch.softmax(s, dim=0))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("key")
axes[0].set_ylabel("softmax weight")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The causal mask
# A language model predicts token `t + 1` from tokens `0 … t`. If position `t` could look
# at later tokens during training it would simply copy the answer. So each query may only
# attend to itself and the past: a lower-triangular **mask**. We follow torch's convention:
# a boolean tensor, `True` where attending is allowed.
#
# ### Exercise: the causal mask
# Write `causal_mask(T)` returning a `(T, T)` boolean tensor with `True` where position
# `i` may attend to position `j`, that is where `j <= i`.


# %%
def causal_mask(T: int) -> torch.Tensor:
    """Boolean (T, T): True where query i may attend to key j (j <= i)."""
    # BEGIN SOLUTION
    # HINT: torch.tril keeps the lower triangle; mind the dtype.
    return torch.tril(torch.ones(T, T, dtype=torch.bool))
    # END SOLUTION


# %%
causal_mask = checks.check_causal_mask(causal_mask)

# %%
fig, ax = plt.subplots(figsize=(3.2, 3.2))
ax.imshow(causal_mask(T), cmap="Blues", vmin=0, vmax=1.4)
ax.set_xticks(range(T), [repr(t) for t in tokens], rotation=90)
ax.set_yticks(range(T), [repr(t) for t in tokens])
ax.set_xlabel("key (attended to)")
ax.set_ylabel("query")
ax.set_title("causal mask: blue = may attend", fontsize=10)
plt.show()

# %% [markdown]
# The mask acts **before** the softmax: masked scores become $-\infty$, so $e^{-\infty} = 0$
# and the softmax spreads the weight over the allowed keys only, still summing to 1.
# Zeroing weights *after* the softmax would leave rows that no longer sum to 1.
#
# ### Exercise: scaled dot-product attention
# Put it together for queries `q`, keys `k` and values `v` with any leading dimensions,
# `(..., T, d)`:
#
# $$\text{attention}(q, k, v) = \text{softmax}\!\left(\frac{q k^\top}{\sqrt{d}} \text{ masked}\right) v$$
#
# where `mask` (if given) is boolean, `True` = may attend. A query whose mask row has no
# `True` at all (padding can do that) may attend to nothing: give it zero weights, as
# torch's own kernel does, not the NaN that a softmax of only $-\infty$ gives.


# %%
def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q @ k^T / sqrt(d), masked) @ v for (..., T, d) tensors."""
    # BEGIN SOLUTION
    # HINT: k.transpose(-2, -1) swaps the last two axes; scores.masked_fill(~mask, float("-inf")).
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:  # a row that may see no key: 0/0 = NaN becomes zero weights
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v  # (..., T_q, d)
    # END SOLUTION


# %%
scaled_dot_product_attention = checks.check_scaled_dot_product_attention(
    scaled_dot_product_attention
)

# %% [markdown] instructor
# Bugs the check names: unscaled scores, dividing by d instead of sqrt(d), softmax over the
# wrong axis, the mask applied after the softmax, filling masked scores with 0, an inverted
# mask, the mask added to the scores, NaN (or the values' mean) for a query that may see no
# key. Ask a learner who hit "mask after softmax" to print `weights.sum(-1)`.

# %% [markdown]
# Here are the causal attention weights of our sentence, with the token vectors as
# queries, keys and values (no training yet, so the pattern itself means nothing):

# %%
from gpt2course.attention import scaled_dot_product_attention as reference_attention

_, w = reference_attention(x, x, x, mask=causal_mask(T), return_weights=True)
fig, ax = plt.subplots(figsize=(3.6, 3.2))
im = ax.imshow(w, cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(T), [repr(t) for t in tokens], rotation=90)
ax.set_yticks(range(T), [repr(t) for t in tokens])
ax.set_xlabel("key")
ax.set_ylabel("query")
fig.colorbar(im, ax=ax, fraction=0.046)
ax.set_title("attention weights", fontsize=10)
plt.show()

# %% [markdown]
# ## Dropout on the weights
# While training, GPT-2 randomly zeroes some attention weights (and scales the rest up by
# `1 / (1 - p)` so the expected output is unchanged). It keeps the model from relying on
# a single connection. At inference time (`model.eval()`) dropout is off. GPT-2 small
# used `p = 0.1`; for fine-tuning and small experiments it is often 0.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
row = torch.full((8,), 1 / 8)  # a query spreading its attention evenly over 8 keys
print(F.dropout(row, p=0.5, training=True))  # some weights zeroed, the rest doubled

# %% [markdown]
# ## Numerically safe attention
# Two things break the simple version in practice:
#
# - **Large scores overflow.** In fp16 (the T4 GPU's fast format), $e^{12}$ is already
#   larger than the biggest fp16 number, 65504. Softmax is unchanged if we subtract the
#   row's maximum from every score first: $e^{s - m} / \sum e^{s' - m}$, and now every
#   exponent is at most 0.
# - **A fully masked row** (a query allowed to see nothing, which happens with padding)
#   has only $-\infty$ scores: $-\infty - (-\infty)$ is NaN. The reference gives such a row
#   zero weights, as torch's own kernel does.

# %%
s = torch.tensor([10.0, 12.0, 11.0], dtype=torch.float16)
print("exp(s)        :", torch.exp(s))
print("exp(s - max)  :", torch.exp(s - s.max()))
print("softmax       :", torch.exp(s - s.max()) / torch.exp(s - s.max()).sum())

# %% [markdown]
# `gpt2course.attention.scaled_dot_product_attention` does both; read it when you have a
# minute. From here on we use it, with the learner version above only if it passed.
#
# ## Queries, keys and values
# So far a token's vector played three roles at once. A trained model learns three
# separate linear maps of each token's vector $x$:
#
# - the **query** $q = x W_Q$: what this token is looking for;
# - the **key** $k = x W_K$: what this token offers to be found by;
# - the **value** $v = x W_V$: what it passes on when attended to.
#
# Now "the" can look for a noun while "cat" advertises being one, independent of what
# either passes on. A single head of self-attention, on a `(B, T, C)` batch:

# %%
B, C = 2, 16
xb = torch.randn(B, T, C)  # (B, T, C)
W_q, W_k, W_v = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
q, k, v = W_q(xb), W_k(xb), W_v(xb)  # each (B, T, C)
y = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))  # (B, T, C)
print(tuple(y.shape))

# %% [markdown]
# ## Several heads
# One softmax gives each query one weighting over the past. But a token may need several
# things at once: the previous word, the subject of the sentence, the opening quote.
# **Multi-head attention** splits the `C` channels into `n_head` groups of
# `head_dim = C // n_head` and runs attention in each group separately, at the same cost
# as one big head. Head 0 owns channels `0 … head_dim-1`, head 1 the next `head_dim`, and
# so on.
#
# The trick is a reshape: `(B, T, C)` → `(B, T, n_head, head_dim)` → transpose to
# `(B, n_head, T, head_dim)`, so the heads become a batch axis that attention broadcasts
# over. Afterwards the heads are merged back the opposite way. In a picture, for a toy
# width of 12 channels and 4 heads (GPT-2 small: 768 channels, 12 heads of 64):

# %%
heads_figure(n_head=4, T=5, n_embd=12)
plt.show()

# %% [markdown]
# ### Exercise: split and merge heads


# %%
def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, C // n_head)."""
    # BEGIN SOLUTION
    # HINT: carve the heads out of the channel axis first (.view), then move them in front of T.
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)
    # END SOLUTION


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_dim) -> (B, T, n_head * head_dim)."""
    # BEGIN SOLUTION
    # HINT: undo split_heads in reverse order; .view needs .contiguous() after a transpose.
    B, n_head, T, head_dim = x.shape
    return x.transpose(1, 2).contiguous().view(B, T, n_head * head_dim)
    # END SOLUTION


# %%
split_heads = checks.check_split_heads(split_heads)
merge_heads = checks.check_merge_heads(merge_heads)

# %%
h = split_heads(q, n_head=4)  # (B, 4, T, 4)
print(tuple(h.shape), "round trip exact:", torch.equal(merge_heads(h), q))

# %% [markdown]
# ## GPT-2's attention layer
# GPT-2 computes q, k and v with **one** linear layer, `c_attn`, from `C` to `3 * C`
# channels (one big matrix product is faster than three), and splits the result in the
# order q, k, v. After attention and merging the heads, a second linear layer, `c_proj`,
# mixes what the heads found. Those two names are the ones in GPT-2's checkpoint, so in
# part 7 OpenAI's weights will load straight into this module.
#
# ### Exercise: the full module
# Write `forward`: `c_attn`, split into q, k, v, split heads, causal attention, merge
# heads, `c_proj`. The input and the output are `(B, T, C)`.


# %%
class CausalSelfAttention(nn.Module):
    """GPT-2's multi-head causal self-attention."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v in one product
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)  # mixes the heads' outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        # BEGIN SOLUTION
        # HINT: c_attn's 3C output channels hold q, k and v side by side; cut them apart first.
        # HINT: a tensor made inside forward lands on the CPU: the mask goes .to(x.device).
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hd)
        mask = causal_mask(T).to(x.device)  # made on the CPU; x may be on a GPU
        y = scaled_dot_product_attention(q, k, v, mask=mask)  # (B, nh, T, hd)
        return self.c_proj(merge_heads(y))  # (B, T, C)
        # END SOLUTION


# %%
CausalSelfAttention = checks.check_causal_self_attention(CausalSelfAttention)

# %% [markdown] instructor
# Bugs the check names: heads merged in the wrong order, no causal mask, unscaled scores or
# scaling by sqrt(n_embd) instead of sqrt(head_dim), q/k/v split in the wrong order,
# c_proj forgotten, layers named differently from GPT-2's, a mask made on the CPU (caught on
# the `meta` device, so without a GPU). A nanoGPT-style mask buffer (`attn.bias`) passes.

# %% [markdown]
# With GPT-2 small's sizes, the layer keeps the shape and holds about 2.4 million
# parameters (GPT-2 small has 12 of them). And it is causal: changing the last tokens
# does not change the outputs before them.

# %%
config = GPTConfig(n_embd=768, n_head=12)
attn = CausalSelfAttention(config).eval()
xs = torch.randn(1, 10, 768)
ys = attn(xs)
print(tuple(ys.shape), f"{sum(p.numel() for p in attn.parameters()):,} parameters")
xs2 = xs.clone()
xs2[:, 7:] = torch.randn(1, 3, 768)  # change the future
print(
    "outputs before position 7 unchanged:", torch.allclose(attn(xs2)[:, :7], ys[:, :7], atol=1e-6)
)

# %% [markdown]
# ## Ours, or torch's?
# PyTorch ships the same computation as `torch.nn.functional.scaled_dot_product_attention`
# (same convention: boolean mask, `True` = may attend). Our hand-written version gives the
# same numbers:

# %%
from gpt2course.attention import causal_mask as reference_mask

q, k, v = torch.randn(3, 2, 12, 50, 64).unbind(0)  # (B, nh, T, hd) each
ours = reference_attention(q, k, v, mask=reference_mask(50))
theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
print("equal within 1e-6:", torch.allclose(ours, theirs, atol=1e-6, rtol=0))

# %% [markdown]
# torch's version picks a fused kernel for the hardware (FlashAttention or a
# memory-efficient one on GPUs) that never stores the full `(T, T)` weight matrix: it is
# faster and needs far less memory for long contexts. So:
#
# - **ours** to learn, and whenever you need the weights themselves (to look at them, as
#   in the viewer below);
# - **torch's** for training and generation.
#
# `gpt2course.attention.CausalSelfAttention` does exactly that: torch's kernel by default,
# the explicit path when asked for the weights. In half precision on a GPU the fused
# kernels are also the more precise: they keep the scores in fp32 inside, where ours rounds
# them to fp16. A rough timing on this machine follows; on a GPU the gap is wider, about
# 20x at T = 1024 in fp16 and 40x at T = 4096 (`python -m gpt2course bench attention`,
# figures in `docs/benchmarks.md`).

# %%
# NBVAL_IGNORE_OUTPUT
q, k, v = torch.randn(3, 1, 12, T_BENCH, 64).unbind(0)
mask = reference_mask(T_BENCH)


def best_of(f, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


t_ours = best_of(lambda: reference_attention(q, k, v, mask=mask))
t_torch = best_of(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
print(f"T={T_BENCH}, 12 heads: ours {1e3 * t_ours:.1f} ms, torch's {1e3 * t_torch:.1f} ms")

# %% [markdown]
# ### Exercise: your layer on torch's kernel
# From part 6 on, your `CausalSelfAttention` trains: thousands of steps, forward and
# backward. Your `scaled_dot_product_attention` has passed its check, so you know what the
# kernel computes; now let the kernel compute it. Write the function again as one call to
# `F.scaled_dot_product_attention`, same arguments, same mask (its `attn_mask` takes a
# boolean mask with our convention, `True` = may attend). The check runs it again, and your
# workbench keeps this version in place of the first: your `CausalSelfAttention` calls it
# by name, here and in every later notebook, so the layer you wrote trains on torch's kernel.

# %%
explicit_attention = scaled_dot_product_attention  # your first version, for the timing below


def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v on torch's fused kernel; mask: True = may attend."""
    # BEGIN SOLUTION
    # HINT: one call; your mask goes in as attn_mask.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # END SOLUTION


# %%
scaled_dot_product_attention = checks.check_scaled_dot_product_attention(
    scaled_dot_product_attention
)

# %% [markdown]
# The same numbers, and the time it takes at part 6's shapes (16 sequences of 128 tokens,
# 4 heads of 32 channels), forward and backward as in training:

# %%
q, k, v = (torch.randn(16, 4, 128, 32, requires_grad=True) for _ in range(3))
mask = causal_mask(128)
first, fused = explicit_attention(q, k, v, mask=mask), scaled_dot_product_attention(q, k, v, mask=mask)
print("same output within 1e-5:", torch.allclose(first, fused, atol=1e-5, rtol=0))

# %%
# NBVAL_IGNORE_OUTPUT
for name, f in [("explicit", explicit_attention), ("on torch's kernel", scaled_dot_product_attention)]:
    ms = 1e3 * best_of(lambda f=f: f(q, k, v, mask=mask).sum().backward())
    print(f"yours, {name}: {ms:.1f} ms")

# %% [markdown]
# ## Looking at attention
# The viewer below runs a text through a GPT and shows each layer's and head's weights:
# the **heatmap** has one row per query token and one column per key token (hover to read
# a weight); **by token** shades the text by how much one chosen token attends to each
# other token.
#
# The GPT here is **untrained** (random weights), so its heads spread their attention
# almost evenly over the past: a fading triangle. In part 7 we load OpenAI's GPT-2 into
# the same viewer and find heads with real jobs, such as looking at the previous token.

# %%
torch.manual_seed(0)
tiny_gpt = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=64, context_length=64)).eval()
ids = enc.encode("The cat sat on the mat because it was tired.")
# The model returns logits only; the viewer catches each layer's input on its way into
# the attention and recomputes the weights from that layer's c_attn, as you did above.
weights = attention_weights(tiny_gpt, torch.tensor(ids))
print(tuple(weights.shape), "= (n_layer, n_head, T, T)")

# %%
# NBVAL_IGNORE_OUTPUT
attention_viewer(
    tiny_gpt,
    enc,
    "The cat sat on the mat because it was tired.",
    title="untrained GPT (random weights)",
)

# %% [markdown]
# Where widgets do not run (a static preview of the notebook), the same heatmap is plain
# HTML:

# %%
from IPython.display import HTML

toks = [enc.decode([i]) for i in ids]
HTML(heatmap_html(weights[0, 0], toks, caption="untrained GPT: layer 0, head 0"))

# %% [markdown]
# ## Summary
# - Attention = similarity scores (dot products), scaled by $1/\sqrt{d}$, masked so that
#   each token sees only the past, softmaxed into weights, then a weighted sum of values.
# - Queries, keys and values are learned projections; several heads attend in parallel
#   over slices of the channels.
# - GPT-2's layer: `c_attn` (one product for q, k, v), split heads, causal attention,
#   merge heads, `c_proj`.
# - Our explicit version equals torch's fused kernel; use torch's for speed, ours to see
#   the weights.
#
# Next, part 4: the rest of a transformer block around this layer (LayerNorm, the MLP,
# residual connections).
