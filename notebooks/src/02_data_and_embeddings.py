# %% [markdown]
# In part 1 we turned text into token ids. A language model learns one thing from those
# ids: **given the tokens so far, predict the next one**. This notebook gets the data into
# that shape and then turns ids into the vectors a network can compute with:
#
# 1. cut the id sequence into training windows, each an *(input, target)* pair;
# 2. serve them in shuffled batches with a PyTorch `Dataset` and `DataLoader`, keeping a
#    validation split aside;
# 3. look up each token's vector in an **embedding table** (GPT-2's `wte`) and add a
#    vector for its **position** (GPT-2's `wpe`).
#
# Two exercises: making the windows, and the embedding sum.
#
# *Machine time: the cells take about 10 seconds on a quiet 2-core CPU (measured 2026-12-06).*

# %% [markdown] instructor
# ⏱ About 30 minutes a learner (the guide's estimate: 9 reading, 19 for the exercises).
# The window/target shift is where people stall: draw one window on the
# board with the arrows from each input position to its target. The embedding part goes
# quickly if learners have seen `nn.Embedding`; spend the saved time on "why positions?".

# %%
import matplotlib.pyplot as plt
import torch

from gpt2course import checks
from gpt2course.assets import tiktoken_gpt2
from gpt2course.data import TokenWindowDataset, load_text, make_dataloaders
from gpt2course.device import quick_mode

# Sizes. Quick mode (used by the automatic tests) reads only the start of the text;
# set N_CHARS = None to use all of Tiny Shakespeare (1.1 million characters).
N_CHARS = 100_000 if quick_mode() else None
CONTEXT_LENGTH = 32  # tokens per training window; GPT-2 used 1024
BATCH_SIZE = 8

# %% [markdown]
# ## The text and its token ids
# Tiny Shakespeare is a 1 MB excerpt of the plays, a classic small training set.
# `load_text` reads it from the course's cache (downloaded once, checked by hash).

# %%
text = load_text("tinyshakespeare")[:N_CHARS]
print(f"{len(text):,} characters")
print(text[:250])

# %% [markdown]
# We encode it with GPT-2's tokenizer. `tiktoken` gives exactly the ids of the tokenizer
# we rebuilt in part 1, only faster.

# %%
enc = tiktoken_gpt2()
ids = enc.encode(text)
print(f"{len(ids):,} tokens, {len(text) / len(ids):.1f} characters per token")
print(ids[:12])
print([enc.decode([i]) for i in ids[:12]])

# %% [markdown]
# ## One window, many predictions
# Take `context_length + 1` consecutive ids. The **input** is the first `context_length`
# of them, the **target** is the same ids shifted left by one. At every position `t` the
# model sees `input[:t+1]` and should predict `target[t]`, the token that came next.
# So a window of 8 tokens is not one training example but 8:

# %%
window = ids[:9]
x, y = window[:-1], window[1:]
for t in range(len(x)):
    context = enc.decode(x[: t + 1])
    print(f"{context!r:>42}  →  {enc.decode([y[t]])!r}")

# %% [markdown]
# The model never looks ahead of `t` to make the prediction at `t`; part 3's *causal
# mask* is what enforces that, so all positions can be trained at once.
#
# ## Sliding windows
# To get many windows we slide a start index along the ids. The **stride** is how far it
# moves each time: `stride = context_length` gives windows that do not overlap; a smaller
# stride gives overlapping windows (more examples from the same text, but more alike).
# Window `i` starts at `i * stride` and needs ids up to `i * stride + context_length`,
# so it fits while that index is inside the sequence.


# %%
def draw_windows(n_ids: int, context_length: int, strides: list[int]) -> None:
    """Draw where each window falls in a sequence of n_ids ids, for a few strides."""
    fig, axes = plt.subplots(1, len(strides), figsize=(4.2 * len(strides), 2.4))
    most = len(range(0, n_ids - context_length, min(strides)))  # rows of the busiest panel
    for ax, stride in zip(axes, strides, strict=True):
        starts = range(0, n_ids - context_length, stride)
        for row, s in enumerate(starts):
            ax.barh(row, context_length, left=s, color="tab:blue", alpha=0.7, height=0.6)
            ax.barh(
                row, context_length, left=s + 1, color="none", edgecolor="tab:orange", height=0.6
            )
        ax.set_yticks(range(len(starts)))
        ax.set_ylim(most - 0.4, -0.6)
        ax.set_xlim(0, n_ids)
        ax.set_xticks(range(0, n_ids + 1, 2))
        ax.set_title(f"context_length={context_length}, stride={stride}")
        ax.set_xlabel("token position")
        ax.set_ylabel("window")
    fig.suptitle("blue: input ids, orange outline: target ids (shifted by one)", fontsize=10)
    fig.tight_layout()
    plt.show()


draw_windows(n_ids=16, context_length=6, strides=[2, 6])

# %% [markdown]
# ### Exercise: make the windows
# Write `make_windows(ids, context_length, stride)` returning two `LongTensor`s, `inputs`
# and `targets`, each of shape `(n_windows, context_length)`: row `i` of `inputs` is
# `ids[s : s + context_length]` and row `i` of `targets` is `ids[s + 1 : s + context_length + 1]`,
# where `s = i * stride`. Include every window that fits, and no window that runs off the end.


# %%
def make_windows(
    ids: list[int], context_length: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (input, target) window of the ids, as two (n_windows, context_length) tensors."""
    # BEGIN SOLUTION
    # HINT: the last start s must still leave room for s + context_length + 1 ids.
    inputs, targets = [], []
    for s in range(0, len(ids) - context_length, stride):
        inputs.append(ids[s : s + context_length])
        targets.append(ids[s + 1 : s + context_length + 1])
    return torch.tensor(inputs), torch.tensor(targets)
    # END SOLUTION


# %%
make_windows = checks.check_make_windows(make_windows)

# %%
inputs, targets = make_windows(list(range(10, 26)), context_length=6, stride=2)
print(inputs)
print(targets)

# %% [markdown] instructor
# Typical bugs the check names: target equal to the input (no shift), the last window
# dropped (`range(0, len(ids) - context_length - 1, stride)`), the stride ignored.

# %% [markdown]
# ## A `Dataset` and a `DataLoader`
# Stacking every window up front is fine for a toy, but with stride 1 every token is
# copied into as many windows as a window is long: at GPT-2's context of 1,024, Tiny
# Shakespeare's 338,025 tokens would become 346 million ids, 2.8 GB as int64. `TokenWindowDataset` stores the ids
# once and cuts window `i` only when asked for it. PyTorch's `DataLoader` then draws
# windows in a random order and stacks them into batches.

# %%
ds = TokenWindowDataset(ids, context_length=CONTEXT_LENGTH, stride=CONTEXT_LENGTH)
print(ds)
x0, y0 = ds[0]
print("input :", x0[:10].tolist(), "...")
print("target:", y0[:10].tolist(), "...")

# %% [markdown]
# ### Train and validation
# We hold out the **last** 10% of the ids to measure how well the model does on text it
# never trained on. The split is contiguous on purpose: picking random windows for
# validation would put windows in it that overlap training windows, and the validation
# loss would flatter the model. `make_dataloaders` does the split, the windows and the
# loaders in one go (it tokenizes with GPT-2's tokenizer when given text).

# %%
train_loader, val_loader = make_dataloaders(
    ids, context_length=CONTEXT_LENGTH, batch_size=BATCH_SIZE, val_fraction=0.1, seed=0
)
print(
    f"{len(train_loader.dataset):,} training windows, {len(val_loader.dataset):,} validation windows"
)
xb, yb = next(iter(train_loader))
print("inputs ", tuple(xb.shape), xb.dtype)  # (B, T)
print("targets", tuple(yb.shape), yb.dtype)  # (B, T)
print("shifted by one:", torch.equal(xb[:, 1:], yb[:, :-1]))

# %% [markdown]
# A batch is a `(B, T)` tensor of ids: `B` windows (the batch size) of `T` tokens (the
# context length). Everything the model computes keeps those two axes in front.
#
# ## From ids to vectors: the embedding table
# A token id is a label, not a quantity: token 500 is not "more" than token 250. So each
# id gets its own learned vector, stored as one row of a table of shape
# `(vocab_size, n_embd)`. Looking a token up means taking its row. GPT-2 calls this table
# `wte` (word token embedding); `n_embd` is 768 in GPT-2 small.
#
# At the start of training the rows are random, and a picture of them shows noise. What
# training does to them shows best in a table small enough to draw: one row per **byte**
# (256 of them), with `n_embd = 2`, so each byte is a point in the plane. The code below
# (`gpt2course.experiments.byte_embeddings`) trains it for a second on our text, on the
# simplest task there is: predict the next byte from the current one. (Part 6 trains a
# byte-level GPT on the same text; GPT-2's own `wte` does this with 768 numbers per token.)

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course.experiments import byte_embeddings

table = byte_embeddings(text, n_embd=2, steps=500)  # (256, 2), one row per byte
seen = sorted(set(text.encode("utf-8")))  # bytes that never occur keep their random start
fig, ax = plt.subplots(figsize=(6, 4.5))
for b in seen:
    ch = chr(b)
    colour = "C3" if ch in "aeiouAEIOU" else "C0" if ch.isalpha() else "C2"
    ax.text(*table[b].tolist(), repr(ch)[1:-1], color=colour, ha="center", va="center")
lo, hi = table[seen].min(0).values - 0.5, table[seen].max(0).values + 0.5
ax.set_xlim(lo[0], hi[0]), ax.set_ylim(lo[1], hi[1])
ax.set_title("bytes at n_embd = 2: vowels red, other letters blue, the rest green", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Nothing told the model what a vowel is, yet the lowercase vowels sit together: they are
# followed by the same kinds of bytes (consonants), so the head needs much the same vector
# from each of them. The punctuation marks, all followed by a space or a newline, gather in a corner
# of their own, far from the letters. That is what an embedding learns:
# tokens that play the same part get nearby vectors. (The exact positions differ from one
# run and one computer to another; the groups do not.)
#
# A lookup is the same as multiplying a one-hot vector by the table, just without the
# wasted multiplications by zero. `nn.Embedding` does the lookup, and its rows are trained
# by backpropagation like any weight:

# %%
torch.manual_seed(0)
tiny_wte = torch.nn.Embedding(num_embeddings=8, embedding_dim=16)  # 8 tokens, 16 numbers each
token = torch.tensor([3])
one_hot = torch.nn.functional.one_hot(token, num_classes=8).float()  # (1, 8)
print(torch.allclose(tiny_wte(token), one_hot @ tiny_wte.weight))

# %% [markdown]
# ## Where is each token? Position embeddings
# The attention layers of part 3 compare every token with every other, but on their own
# they cannot tell *where* a token is: shuffle the input and each token would see the same
# set of others. So GPT-2 adds a second learned table, `wpe`, with one row per position
# (`context_length = 1024` rows), and feeds the model the sum
#
# $$x_{b,t} = \text{wte}[\text{idx}_{b,t}] + \text{wpe}[t].$$
#
# The sum keeps the width at `n_embd`; the network learns to read both kinds of
# information out of one vector. (The original transformer used fixed sine waves; GPT-2
# learns its positions.)
#
# ### Exercise: the embedding sum
# Write `embed(idx, wte, wpe)` for a batch of ids `idx` of shape `(B, T)`, returning the
# `(B, T, n_embd)` input vectors. Positions run from 0 to T-1.


# %%
def embed(idx: torch.Tensor, wte: torch.nn.Embedding, wpe: torch.nn.Embedding) -> torch.Tensor:
    """Token embeddings plus position embeddings: (B, T) ids -> (B, T, n_embd)."""
    # BEGIN SOLUTION
    # HINT: torch.arange(T, device=idx.device) gives the positions; (B, T, C) + (T, C) broadcasts.
    B, T = idx.shape
    tok_emb = wte(idx)  # (B, T, C)
    pos_emb = wpe(torch.arange(T, device=idx.device))  # (T, C)
    return tok_emb + pos_emb
    # END SOLUTION


# %%
embed = checks.check_embed(embed)

# %% [markdown] instructor
# Typical bugs the check names: forgetting `wpe`, `wpe(idx)` (positions looked up with the
# token ids), positions starting at 1, concatenating instead of adding.

# %% [markdown]
# Now with GPT-2 small's sizes, on a batch from our loader:

# %%
torch.manual_seed(0)
n_embd, vocab_size, context_length = 768, enc.n_vocab, 1024
wte = torch.nn.Embedding(vocab_size, n_embd)  # (50257, 768)
wpe = torch.nn.Embedding(context_length, n_embd)  # (1024, 768)
x = embed(xb, wte, wpe)
print("ids    ", tuple(xb.shape), " (B, T)")
print("vectors", tuple(x.shape), " (B, T, C)")
print(f"wte holds {wte.weight.numel():,} numbers, wpe {wpe.weight.numel():,}")

# %% [markdown]
# The token table alone holds 38.6 million numbers, almost a third of GPT-2 small's 124
# million parameters. (GPT-2 reuses the same table at the very end to turn vectors back
# into next-token scores; part 4 shows that *weight tying*.)
#
# Two checks that the sum means what we think: the same token at two positions gets two
# different vectors, and the same position carries the same position vector in every window.

# %%
same = torch.full((1, 2), ids[0])  # one token, at positions 0 and 1
v = embed(same, wte, wpe)[0]  # (2, C)
print("same token, two positions, same vector?", torch.allclose(v[0], v[1]))
print(
    "position part shared across the batch?",
    torch.allclose(x[0] - wte(xb[0]), x[1] - wte(xb[1]), atol=1e-6),
)

# %% [markdown]
# ## Summary
# - A window of `context_length + 1` ids gives `context_length` next-token examples:
#   targets are the inputs shifted by one.
# - The stride sets how much windows overlap; `TokenWindowDataset` cuts them on demand and
#   `make_dataloaders` shuffles training batches of shape `(B, T)` and keeps a contiguous
#   validation split.
# - `wte` turns ids into learned vectors, `wpe` adds where each token sits; their sum,
#   `(B, T, C)`, is what the transformer sees.
#
# Next, part 3: attention, the layer that lets each of those vectors gather information
# from the tokens before it.
