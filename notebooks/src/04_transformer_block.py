# %% [markdown]
# Attention lets tokens talk to each other. A **transformer block** wraps it with the
# pieces that make a deep stack of such layers trainable, and adds a second sublayer in
# which each token thinks on its own:
#
# ```
# x ─┬─ ln_1 ─ attn ─(+)─┬─ ln_2 ─ mlp ─(+)─▶
#    └──────────────────┘└─────────────────┘
# ```
#
# 1. **LayerNorm** keeps each token's vector at a steady scale;
# 2. **GELU**, the smooth non-linearity inside the MLP, in the exact form GPT-2 used;
# 3. the **MLP**: expand each vector 4x, GELU, project back;
# 4. **residual connections** (the `(+)`), and why LayerNorm goes *before* each sublayer;
# 5. the whole **block**; then the final `ln_f` and the output head tied to `wte`;
# 6. counting GPT-2's **124,439,808** parameters by hand and by code.
#
# Exercises: `layer_norm`, `gelu`, `MLP`, `Block`, then `layer_norm` and `gelu` again on
# torch's fused kernels.
#
# *Machine time: the cells take about 1.5 minutes on a quiet 2-core CPU (measured 2026-12-06), most of it one training experiment.*

# %% [markdown] instructor
# ⏱ About 70 minutes a learner (the guide's estimate: 15 reading, 56 for the exercises).
# The exercises are short; spend the time on why residuals and pre-LN
# matter (the gradient-norm cell) and on the parameter count, which learners enjoy doing
# on paper first. Where they stall: `unbiased=False` in the variance, and the order of the
# residual additions in the block.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import checks, workbench
from gpt2course.figures import model_figure
from gpt2course.model import GPT, MODEL_NAMES, GPTConfig, count_parameters

# A small block for the checks and experiments; the blocks you build here are the ones
# part 5 stacks into GPT-2 (at GPT-2 small's width there).
config = GPTConfig(n_embd=64, n_head=4, n_layer=2, context_length=64, vocab_size=100)
DEPTH = 48  # sublayers in the residual experiment, as many as GPT-2's largest size
torch.manual_seed(0)

# %% [markdown]
# ## LayerNorm
# As a vector goes through many layers its scale drifts: some blocks blow it up, others
# shrink it, and training becomes a balancing act. **Layer normalisation** resets every
# token's vector to mean 0 and variance 1 across its `C` features, then lets the model
# choose the scale back with a learned gain and bias (one number per feature):
#
# $$\mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}\,\gamma + \beta,\qquad
# \mu = \tfrac1C\textstyle\sum_i x_i,\quad \sigma^2 = \tfrac1C\sum_i (x_i-\mu)^2$$
#
# Each token is normalised on its own; nothing is shared across the batch or across
# positions (unlike BatchNorm). `ε = 1e-5` keeps the division safe for a constant vector.


# %%
def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Normalise x (..., C) over its last dimension, then scale by weight and shift by bias."""
    # BEGIN SOLUTION
    # HINT: x.mean(-1, keepdim=True); the variance divides by C, not C - 1 (unbiased=False).
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias
    # END SOLUTION


# %%
layer_norm = checks.check_layer_norm(layer_norm)

# %% [markdown]
# Vectors of wildly different scales come out alike. `nn.LayerNorm` is the same thing as a
# module, holding `weight` (γ, starting at 1) and `bias` (β, starting at 0). Your block below
# uses a module like it that runs *your* `layer_norm`; the final `ln_f` of part 5 stays
# `nn.LayerNorm`, the same computation in one fused kernel.

# %%
x = torch.randn(3, config.n_embd) * torch.tensor([[0.1], [1.0], [100.0]]) + 5  # (3, C)
ln = nn.LayerNorm(config.n_embd)
y = layer_norm(x, ln.weight, ln.bias)
print("before: std per row", [round(s, 3) for s in x.std(-1).tolist()])
print("after:  std per row", [round(s, 3) for s in y.std(-1, unbiased=False).tolist()])
print("same as nn.LayerNorm:", torch.allclose(y, ln(x), atol=1e-4))

# %% [markdown]
# ## GELU, in GPT-2's tanh form
# Between its two linear layers the MLP needs a non-linearity, or the two would collapse
# into one matrix. GPT-2 uses **GELU**, $x\,\Phi(x)$ with $\Phi$ the normal CDF: like ReLU
# for large $|x|$, but smooth around 0 and slightly negative just below it.
#
# GPT-2 was trained with a tanh approximation, the one GELU's paper (Hendrycks and Gimpel
# 2016) gives as a fast stand-in for the exact $\Phi$ (through `erf`). GPT-1's code already
# used it, and GPT-2's code kept it; neither paper says why they chose it over the exact form:
#
# $$\mathrm{GELU}(x) \approx \tfrac12 x\left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)$$
#
# The two differ by less than 0.001. Why care? The checkpoint's weights were learned
# *through* the tanh curve; the exact form shifts every activation a little, and after
# 12 blocks the logits no longer match OpenAI's. Hugging Face calls this form `gelu_new`.


# %%
def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (GPT-2's), elementwise."""
    # BEGIN SOLUTION
    # HINT: math.sqrt(2 / math.pi), torch.tanh, and x ** 3.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    # END SOLUTION


# %%
gelu = checks.check_gelu(gelu)

# %%
xs = torch.linspace(-4, 4, 401)
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
a.plot(xs, torch.relu(xs), label="ReLU", color="grey", ls="--")
a.plot(xs, gelu(xs), label="GELU (tanh form)")
a.set_title("GELU is a smooth ReLU")
a.legend()
a.grid(alpha=0.3)
b.plot(xs, F.gelu(xs) - gelu(xs), color="C3")
b.set_title("exact (erf) minus tanh form")
b.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The MLP
# Attention moves information *between* positions; the MLP processes each position *on its
# own*, with the same weights everywhere. It widens the vector 4x (`c_fc`), applies GELU,
# and projects back (`c_proj`). Two thirds of GPT-2's block parameters live here.
#
# Write it as a module with GPT-2's names (`c_fc`, `c_proj`), so the checkpoint's weights
# can load into it in part 7. `config.n_embd` is the width `C`.


# %%
class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, 4C), GELU (tanh form), Linear(4C, C)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        # BEGIN SOLUTION
        # HINT: two nn.Linear layers, with bias (config.bias is True for GPT-2).
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        # BEGIN SOLUTION
        # HINT: c_fc, then the activation, then c_proj.
        return self.c_proj(gelu(self.c_fc(x)))  # (B, T, 4C) in the middle
        # END SOLUTION


# %%
MLP = checks.check_mlp(MLP)

# %% [markdown]
# ## Residual connections
# A block does not replace `x`; it *adds* to it: `x = x + attn(...)`, `x = x + mlp(...)`.
# The sum is the **residual stream**, a running total every sublayer reads from and
# writes into. Its point shows in the gradient: the derivative of `x + f(x)` is `1 + f'`,
# so the gradient reaches the first layer along the identity path however deep the stack
# is. Without it, the gradient is a product of many Jacobians, and it fades or explodes.
#
# An experiment, the classic picture of why: stack `DEPTH` MLP sublayers (your `MLP`,
# with GPT-2's initialisation), put a loss on top that depends on the input (a fixed random
# read-out scored against random next tokens, like the language-model head), backpropagate,
# and measure the gradient that reaches each sublayer's weights. Three ways to stack:
# **pre-LN** residuals (GPT-2: `h + mlp(ln(h))`), **post-LN** residuals (the original
# Transformer: `ln(h + mlp(h))`), and **no residuals** (`mlp(ln(h))`, LayerNorm kept).
# The experiment's code is `gpt2course.experiments.residual_gradients`, which the tests check.

# %%
from gpt2course.experiments import RESIDUAL_SETTINGS, residual_gradients

profiles = {s: residual_gradients(s, depth=DEPTH, make_sublayer=MLP) for s in RESIDUAL_SETTINGS}
for name, p in profiles.items():
    g = p.layer_grad_norms
    print(
        f"{name:<12} gradient at the input {p.input_grad_norm:.1e}; "
        f"weights of sublayer 1 {g[0]:.1e}, {DEPTH // 2} {g[DEPTH // 2 - 1]:.1e}, {DEPTH} {g[-1]:.1e}"
    )
fig, ax = plt.subplots(figsize=(6, 2.8))
for name, p in profiles.items():
    ax.semilogy(range(1, DEPTH + 1), p.layer_grad_norms, label=name)
ax.set_xlabel("sublayer (1 = nearest the input)"), ax.set_ylabel("gradient norm of its weights")
ax.legend(), ax.set_title(f"{DEPTH} MLP sublayers at initialisation")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Without residuals the gradient fades**: the last sublayer gets a gradient of about 60,
# the first about 0.002, and the input a few millionths, 50,000 times less than with
# residuals. Each sublayer multiplies the gradient by its Jacobian, and with weights of
# std 0.02 that is a shrinking factor, 48 times over. The first layers would barely learn.
#
# **With residuals, pre-LN or post-LN, every sublayer gets the same gradient** (about 0.3),
# and the input about 0.18: the identity path carries it down unchanged. At initialisation
# the two orders give the same numbers, and GPT-2 chose the reason on purpose: with weights
# of std 0.02, and the projections back into the stream scaled by 1/sqrt(2 x layers), each
# sublayer starts by adding almost nothing to the stream, so a LayerNorm after the sum has
# almost nothing to undo. Where the two orders part is in training, once the sublayers
# write real amounts.
#
# ### Training the three stacks
# Train each stack for 100 steps to predict the next character of Tiny Shakespeare: each
# byte gets a learned vector, then the `DEPTH` sublayers, then a linear head. Same data,
# same AdamW, learning rate 5e-3 from the first step, no warm-up. An MLP sees one position
# at a time, so the best any of these stacks can learn is which character tends to follow
# which: a loss of 2.45 nats, counted from the text. A model that knows only how common
# each character is scores 3.31. About 40 seconds on a 2-core laptop CPU.

# %% record:training
# NBVAL_IGNORE_OUTPUT
from gpt2course.data import load_text
from gpt2course.device import quick_mode
from gpt2course.experiments import byte_entropies, residual_training

# Quick mode (the tests) trains 60 steps: the gradients tell the same story, the losses
# have had less time to part.
steps = 60 if quick_mode() else 100
runs = {s: residual_training(s, steps=steps, make_sublayer=MLP) for s in RESIDUAL_SETTINGS}
letters, pairs = byte_entropies(load_text("shakespeare"))
for name, r in runs.items():
    g = r.input_grad_norms
    print(
        f"{name:<12} loss {r.losses[0]:.2f} -> {sum(r.losses[-10:]) / 10:.2f}; "
        f"gradient at the input {g[0]:.0e} at step 1, {g[-1]:.0e} at step {len(g)}"
    )
stds = runs["post-LN"].stream_stds
print(
    f"post-LN's LayerNorms divide sums of std {min(stds):.1f} to {max(stds):.1f}; "
    f"{DEPTH} such divisions multiply to {math.prod(1 / s for s in stds):.0e}"
)
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.2))
for name, r in runs.items():
    ax1.plot(r.losses, label=name)
    ax2.semilogy([max(g, 1e-20) for g in r.input_grad_norms], label=name)
    ax3.semilogy(range(1, DEPTH + 1), [max(g, 1e-20) for g in r.layer_grad_norms], label=name)
ax1.axhline(letters, color="gray", ls="--", lw=1)
ax1.axhline(pairs, color="gray", ls=":", lw=1)
ax1.text(steps - 1, letters + 0.3, "letter frequencies only", ha="right", fontsize=8)
ax1.text(steps - 1, pairs - 0.25, "best with one character seen", ha="right", fontsize=8)
ax1.set_xlabel("step"), ax1.set_ylabel("loss (nats)"), ax1.set_ylim(2, 6), ax1.legend()
ax1.set_title("loss", fontsize=10)
ax2.set_xlabel("step"), ax2.set_ylabel("gradient norm")
ax2.set_title("gradient at the input (0 drawn at 1e-20)", fontsize=10)
ax3.set_xlabel("sublayer (1 = nearest the input)"), ax3.set_ylabel("gradient norm of its weights")
ax3.set_title(f"per sublayer at step {len(runs['pre-LN'].losses)}", fontsize=10)
fig.suptitle(f"{DEPTH} MLP sublayers trained at learning rate 5e-3, no warm-up")
plt.tight_layout()
plt.show()

# %% [markdown]
# Late in training, one step's gradient can be a lucky one; the median of the last 20 steps
# is not. Here it is beside pre-LN's, and what post-LN's LayerNorms divide by (the exact
# numbers differ from one seed and one computer to the next; `tests/test_experiments.py`
# checks that what the text below says of them holds at two seeds, with the MLP written two
# ways).

# %%
# NBVAL_IGNORE_OUTPUT
import statistics

late = {name: statistics.median(r.input_grad_norms[-20:]) for name, r in runs.items()}
for name, g in late.items():
    print(f"{name:<12} gradient at the input, last 20 steps {g:.0e}: {g / late['pre-LN']:.0e} x pre-LN's")
stds = runs["post-LN"].stream_stds
print(
    f"post-LN's LayerNorms divide sums of std {statistics.mean(stds):.1f} on average, "
    f"{DEPTH} times: a gradient on its way down shrinks {math.prod(stds):.0e}-fold"
)

# %% [markdown]
# **Pre-LN trains; post-LN learns the letter frequencies and stops.** Pre-LN's loss falls
# below 3.31 (by 0.2 to 0.5 in 100 steps, with the seed and the computer), on its way to the
# 2.45 that one character allows. Post-LN's stops at
# about 3.3, the loss of a model that knows only how common each character is, and so does
# the stack without residuals. The middle panel shows why: post-LN starts with the same
# gradient at the input as pre-LN and loses it within a few dozen steps (at full size it
# ends a hundred thousand times smaller or more); without residuals there was little from
# the start (at full size, as in the first experiment), and by the end it is 0 or close to
# it. The third panel is the first experiment's per-sublayer picture after training:
# post-LN's gradient now fades toward the input as no residual's did at initialisation.
# The first sublayers stop learning, and what is left on top can only count letters.
#
# Why post-LN loses it: once the sublayers write real amounts into the stream, the sum
# `h + mlp(h)` has a standard deviation above 1 (the last line above), and the
# LayerNorm after it divides the sum by that, and the gradient on its way down by the
# same: 48 divisions multiply to a tiny factor. Pre-LN has no LayerNorm on the stream: each
# sublayer normalises only the copy it reads, and the `1` in the derivative of
# `h + mlp(ln(h))` carries the gradient down untouched.
#
# This is the trouble the original Transformer had: deep post-LN stacks need a small
# learning rate or a learning-rate warm-up, small steps while the sublayers are still small
# (Xiong et al. 2020, *On Layer Normalization in the Transformer Architecture*, explain the
# need for warm-up by the large gradients near the output at initialisation; Takase et al.
# 2022, *On Layer Normalizations and Residual Connections in Transformers*, find that
# post-LN's LayerNorms are where the gradient vanishes, as here). At a learning rate of
# 1e-3 both orders train this stack to about the same loss; try
# `residual_training("post-LN", learning_rate=1e-3)`. Pre-LN takes the larger steps
# without breaking. GPT-2 moved to pre-LN, and added one last LayerNorm, `ln_f`, after the
# final block, since the stream itself is never normalised.
#
# ## The block
# Where the pieces go: the residual stream runs straight through the block, and each
# sublayer reads a normalised copy of it and adds its result back (right). Part 5 stacks
# `n_layer` blocks between the embeddings and the head (left; the shapes are GPT-2 small's).

# %%
model_figure(GPTConfig.from_name("gpt2"))
plt.show()

# %% [markdown]
# Now assemble it: `ln_1`, `attn`, `ln_2`, `mlp`, with the two residual additions. The
# LayerNorms are `LayerNorm` (given in the cell below): your `layer_norm` as a module, with
# `nn.LayerNorm`'s `weight` and `bias`, so that GPT-2's `h.0.ln_1.weight` and
# `h.0.ln_1.bias` load into it in part 7.
# `CausalSelfAttention` is your module from part 3 (`forward(x)` returns `y`, `(B, T, C)`),
# taken from your workbench: every check that passes keeps your code there, and
# `workbench.use` rebuilds it, checks it again, and falls back to the reference if it is
# missing or wrong. Which one you got, the line below says.

# %%
# NBVAL_IGNORE_OUTPUT
CausalSelfAttention = workbench.use("CausalSelfAttention")


# %%
class LayerNorm(nn.Module):
    """Your layer_norm as a module, with nn.LayerNorm's parameters: weight (γ) and bias (β)."""

    def __init__(self, n_embd: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))  # GPT-2's checkpoint names them so:
        self.bias = nn.Parameter(torch.zeros(n_embd))  # h.0.ln_1.weight, h.0.ln_1.bias
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)  # yours, or the reference's


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        # BEGIN SOLUTION
        # HINT: LayerNorm(config.n_embd) (above), CausalSelfAttention(config), and your MLP.
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        # BEGIN SOLUTION
        # HINT: each sublayer reads a normalised x and adds its output back to x.
        x = x + self.attn(self.ln_1(x))  # tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # each token processes it on its own
        return x
        # END SOLUTION


# %%
Block = checks.check_block(Block)  # kept on your workbench for part 5 when it passes

# %%
block = Block(config)
x = torch.randn(2, 10, config.n_embd)  # (B, T, C)
print("in", tuple(x.shape), "-> out", tuple(block(x).shape))

# %% [markdown]
# Same shape in, same shape out: that is what lets GPT-2 stack 12 of them (48 for the
# largest size).
#
# ## Your block at torch's speed
# Your `layer_norm` and `gelu` compute the right numbers in five or six steps each, and
# every step writes a whole tensor to memory and reads it back, forward and backward.
# PyTorch has each as one fused kernel: `F.layer_norm` and `F.gelu`. As with attention at
# the end of part 3, keep what you wrote to learn and let the kernels run what trains.
# First, your block's time at part 6's size as it is now, forward and backward:

# %%
# NBVAL_IGNORE_OUTPUT
import time


def block_ms(block: nn.Module, x: torch.Tensor, n: int = 5) -> float:
    """The fastest of n forward and backward passes, in milliseconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        block(x).sum().backward()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


block6 = Block(GPTConfig(n_embd=128, n_head=4))  # part 6's width
x6 = torch.randn(16, 128, 128)  # part 6's batch: 16 sequences of 128 tokens
before = block_ms(block6, x6)

# %% [markdown]
# ### Exercise: `layer_norm` and `gelu` on torch's kernels
# Write each again as one call. The checks run them again, and your workbench keeps these
# versions in place of the first: your `LayerNorm` module and your `MLP` call them by name,
# here and in every later notebook.


# %%
def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """layer_norm as above, in torch's fused kernel."""
    # BEGIN SOLUTION
    # HINT: F.layer_norm normalises over the trailing shape you give it: here x.shape[-1:].
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)
    # END SOLUTION


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU in GPT-2's tanh form, in torch's fused kernel."""
    # BEGIN SOLUTION
    # HINT: F.gelu computes the exact (erf) form unless it is told otherwise.
    return F.gelu(x, approximate="tanh")
    # END SOLUTION


# %%
layer_norm = checks.check_layer_norm(layer_norm)
gelu = checks.check_gelu(gelu)

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"the block at part 6's size, forward and backward: {before:.1f} ms before this "
    f"exercise, {block_ms(block6, x6):.1f} ms after"
)

# %% [markdown]
# Your block is the same code; it now calls the kernels through your two functions.
#
# ## The final LayerNorm and the tied head
# After the last block, `ln_f` normalises the stream, and the **language-model head**
# turns each `C`-vector into one score (logit) per vocabulary token: a `C × vocab` matrix.
# GPT-2 does not learn a separate one: it reuses the token embedding `wte`. A token's
# embedding is then both how it is read in and what the model's output must resemble to
# predict it, and 38.6M parameters are saved. In our `GPT`, `lm_head.weight` *is*
# `wte.weight`, the same tensor:

# %%
tiny = GPT(config)
print("lm_head.weight is wte.weight:", tiny.lm_head.weight is tiny.wte.weight)
print("module names:", [n for n, _ in tiny.named_children()])
print("block 0:", [n for n, _ in tiny.h[0].named_children()])

# %% [markdown]
# ## Counting the parameters
# By hand, for width `C`, `L` blocks, vocabulary `V` and context `N`:
#
# | piece | parameters |
# | --- | --- |
# | `ln_1`, `ln_2` | 2C each (gain and bias) |
# | `attn.c_attn` (q, k, v fused) | C·3C + 3C |
# | `attn.c_proj` | C·C + C |
# | `mlp.c_fc` | C·4C + 4C |
# | `mlp.c_proj` | 4C·C + C |
# | **one block** | **12C² + 13C** |
# | `wte`, `wpe` | V·C, N·C |
# | `ln_f` | 2C |
# | `lm_head` | 0 (tied to `wte`) |


# %%
def count_by_hand(C: int, L: int, V: int = 50257, N: int = 1024) -> int:
    block = 12 * C * C + 13 * C
    return V * C + N * C + L * block + 2 * C


C, L = 768, 12
print(f"one block:     {12 * C * C + 13 * C:>12,}")
print(f"12 blocks:     {L * (12 * C * C + 13 * C):>12,}")
print(f"wte + wpe:     {50257 * C + 1024 * C:>12,}")
print(f"gpt2 in total: {count_by_hand(C, L):>12,}")

# %% [markdown]
# 124,439,808: the number people look up for "GPT-2 small". The code agrees, for all four
# sizes. `count_parameters` builds the model on PyTorch's `meta` device, which records
# shapes without allocating memory, so even the 1.5B-parameter model costs nothing:

# %%
sizes = {}
for name in MODEL_NAMES:
    cfg = GPTConfig.from_name(name)
    n = count_parameters(cfg)
    sizes[name] = (cfg, n)
    assert n == count_by_hand(cfg.n_embd, cfg.n_layer)
    print(f"{name:<12} L={cfg.n_layer:<3} C={cfg.n_embd:<5} {n:>14,}")

# %%
fig, ax = plt.subplots(figsize=(6, 2.6))
names = list(sizes)
emb = [(c.vocab_size + c.context_length) * c.n_embd / 1e6 for c, _ in sizes.values()]
blocks = [c.n_layer * (12 * c.n_embd**2 + 13 * c.n_embd) / 1e6 for c, _ in sizes.values()]
ax.barh(names, emb, label="embeddings (wte + wpe)", color="C1")
ax.barh(names, blocks, left=emb, label="blocks", color="C0")
ax.set_xlabel("millions of parameters")
ax.invert_yaxis()
ax.legend(loc="upper right")
ax.set_title("Where GPT-2's parameters are")
plt.tight_layout()
plt.show()

# %% [markdown]
# In the small model, almost a third of the parameters are the embedding table; in the
# largest, the blocks dominate. Next, in part 5: put the pieces together into the whole
# GPT-2, and make it write.
