# %% [markdown]
# Part 5 gave us a GPT that writes noise: its weights are random. **Pretraining** fixes
# that by showing it text and nudging every weight, a little at a time, towards predicting
# each next token better. In this notebook we pretrain a small GPT on Tiny Shakespeare,
# 1 MB of plays, on a laptop CPU: the whole notebook took 7.0 minutes on the project's
# 2-core cloud CPU with nothing else running (2026-12-07), most of it the training run.
#
# 1. the language-modelling loss, and why an untrained model scores about ln(vocab);
# 2. a training loop from scratch: forward, loss, backward, step;
# 3. the ingredients of a real run: AdamW, warmup + cosine learning rate, gradient
#    clipping, gradient accumulation;
# 4. validation loss and perplexity, a live loss plot, samples as the model learns;
# 5. saving a checkpoint and resuming exactly where a run stopped;
# 6. the same loop from the shell, and on many GPUs with `torchrun`.
#
# Exercises: the loss, the learning-rate schedule, and one training step.

# %% [markdown] instructor
# ⏱ About 50 minutes a learner (the guide's estimate: 13 reading, 34 for the exercises),
# plus the main training run: start it before the break if the room's laptops are slow. Where learners stall: flattening `(B, T, V)` for
# `cross_entropy`, the `step + 1` in the warmup, and dividing each micro-batch's loss in
# `train_step`. If a laptop cannot finish the run, the catch-up checkpoint command is at
# the end.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from gpt2course import checks, workbench
from gpt2course.device import pick_device, quick_mode
from gpt2course.model import GPTConfig

device = pick_device()
QUICK = quick_mode()
# The main run. Full: a 0.8M-parameter GPT, 1200 steps, ~8 minutes on a quiet 2-core CPU.
# Quick (CI): a smaller model for a few seconds; its samples will still be noise.
N_LAYER, N_HEAD, N_EMBD = (2, 2, 64) if QUICK else (4, 4, 128)
BLOCK_SIZE, BATCH_SIZE = (64, 8) if QUICK else (128, 16)
MAX_STEPS = 60 if QUICK else 1200
print("device:", device)

# %% [markdown]
# The model is yours: part 5's `GPT`, built from your blocks, from your workbench (the
# reference stands in for any piece that is missing or wrong, and the line says which).

# %%
# NBVAL_IGNORE_OUTPUT
GPT = workbench.use("GPT")

# %% [markdown]
# ## The data, as bytes
# We read the text as raw UTF-8 bytes: a vocabulary of 256 "tokens". GPT-2's BPE
# vocabulary has 50257, and with a model this small the final layer's 50257-way softmax
# would cost several times more than all the transformer blocks together. The training
# loop does not care which tokenizer made the ids; the shell command at the end trains
# with GPT-2's.
#
# The last 10% of the text is the **validation** split: the model never trains on it, so
# its loss there tells us whether it learned Shakespeare or memorised its training pages.

# %%
from gpt2course.data import RandomBatches, load_text, split_tokens
from gpt2course.tokenizer.named import get_tokenizer

tok = get_tokenizer("bytes")
text = load_text("shakespeare")
train_ids, val_ids = split_tokens(tok.encode(text), val_fraction=0.1)
print(
    f"{len(text):,} characters -> {len(train_ids):,} training and {len(val_ids):,} validation bytes"
)
print(text[:200])

# %% [markdown]
# Batches are random windows of `BLOCK_SIZE + 1` bytes: the input `x` is the first
# `BLOCK_SIZE`, the target `y` is the same window shifted by one, so `y[b, t]` is the byte
# that follows `x[b, t]`. `RandomBatches` makes batch number `n` from a seed and `n`
# alone, which will let a stopped run resume on exactly the batches it would have seen.

# %%
train_batches = RandomBatches(train_ids, BATCH_SIZE, BLOCK_SIZE, seed=1337)
val_batches = RandomBatches(val_ids, BATCH_SIZE, BLOCK_SIZE, seed=1)
x, y = train_batches.batch(0)
print("x", tuple(x.shape), repr(tok.decode(x[0, :40].tolist())))
print("y", tuple(y.shape), repr(tok.decode(y[0, :40].tolist())))

# %% [markdown]
# ## The language-modelling loss
# For every position the model outputs `V` logits, one per possible next token. Softmax
# turns them into probabilities, and the loss at that position is $-\log p(\text{the true
# next token})$: 0 when the model was sure and right, large when it gave the truth little
# chance. The training loss is the mean over all `B * T` positions. This is exactly
# cross-entropy; `F.cross_entropy` wants the classes in dimension 1, so flatten first.


# %%
def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token logits (B, T, V) against targets (B, T)."""
    # BEGIN SOLUTION
    # HINT: F.cross_entropy wants the classes in dimension 1: flatten batch and time first.
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    # END SOLUTION


# %%
lm_loss = checks.check_lm_loss(lm_loss)

# %% [markdown]
# ## What an untrained model scores
# A freshly initialised GPT has small random weights, so its logits are all close to 0
# and softmax spreads the probability almost evenly: $p \approx 1/V$ for every token.
# Its loss is then $-\log(1/V) = \ln V$, whatever the text. For GPT-2's vocabulary that is
# $\ln 50257 = 10.82$; for our bytes, $\ln 256 = 5.55$. Seeing this number at step 0 is a
# good sign the loss is wired correctly; seeing 30 means the initialisation is too large.

# %%
torch.manual_seed(0)
vocabs = [256, 2048, 16384, 50257]
initial = []
for V in vocabs:
    m = GPT(GPTConfig(vocab_size=V, context_length=64, n_embd=32, n_layer=1, n_head=2))
    ids = torch.randint(V, (4, 65))
    with torch.no_grad():
        initial.append(lm_loss(m(ids[:, :-1]), ids[:, 1:]).item())
for V, loss in zip(vocabs, initial, strict=True):
    print(f"V = {V:>6}: untrained loss {loss:.3f}   ln V = {math.log(V):.3f}")

fig, ax = plt.subplots(figsize=(4.5, 2.8))
grid = torch.logspace(2, 5, 50)
ax.plot(grid, grid.log(), color="gray", label="ln V")
ax.plot(vocabs, initial, "o", label="untrained GPT")
ax.set_xscale("log")
ax.set_xlabel("vocabulary size V")
ax.set_ylabel("loss at step 0")
ax.legend()
plt.show()

# %% [markdown]
# A second yardstick: a model that learned only how often each byte occurs, and ignores
# the context, would score the **unigram entropy** of the text. Our model has to beat it
# by a wide margin to have learned anything about words and lines.

# %%
counts = torch.bincount(train_ids, minlength=256).double()
p = counts[counts > 0] / counts.sum()
unigram = -(p * p.log()).sum().item()
print(
    f"uniform guess ln 256 = {math.log(256):.2f}, byte frequencies only = {unigram:.2f} nats per byte"
)
TARGET = 2.0
print(f"our target for the main run: validation loss below {TARGET}")

# %% [markdown]
# ## A training loop from scratch
# One step of gradient descent is five lines: run the model, compute the loss, clear the
# old gradients, backpropagate, update. Here it is with a constant learning rate on a
# fresh model; watch the loss fall from about 5.5.

# %%
torch.manual_seed(1337)
config = GPTConfig(
    vocab_size=256, context_length=BLOCK_SIZE, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD
)
model = GPT(config).to(device)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
for step in range(21):
    x, y = train_batches.batch(step)
    x, y = x.to(device), y.to(device)
    logits = model(x)  # (B, T, V)
    loss = lm_loss(logits, y)
    optimizer.zero_grad(set_to_none=True)  # gradients add up otherwise
    loss.backward()
    optimizer.step()
    if step % 5 == 0:
        print(f"step {step:2d}  loss {loss.item():.3f}")

# %% [markdown]
# That loop works, and a real run keeps its shape. Four refinements make it train faster
# and more reliably on real models.
#
# ## AdamW, with weight decay on the matrices only
# Adam gives each weight its own step size, from running averages of its gradient
# (`exp_avg`) and squared gradient (`exp_avg_sq`). AdamW adds **weight decay**: every step
# shrinks the weights a little towards 0, which keeps them from growing without need.
# nanoGPT and minGPT decay only the 2-D weights (matmuls and embeddings), and so does this
# course (GPT-2's own optimiser settings were never published); biases and LayerNorm gains
# are few, and pulling LayerNorm gains to 0 would fight their purpose.

# %%
from gpt2course.train import configure_optimizer

optimizer = configure_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
for group in optimizer.param_groups:
    n = sum(p.numel() for p in group["params"])
    print(f"weight_decay={group['weight_decay']}: {len(group['params'])} tensors, {n:,} numbers")

# %% [markdown]
# ## Learning-rate warmup and cosine decay
# At step 0 Adam's running averages know nothing yet, and big steps from a random start
# can throw the model somewhere it never recovers from. So the learning rate **warms up**
# linearly over the first steps, then **decays** along half a cosine to a floor `min_lr`:
# large steps while the loss falls fast, small ones at the end to settle into a minimum.
#
# Write the schedule; `step` counts from 0.
# - for `step < warmup_steps`: `max_lr * (step + 1) / warmup_steps`;
# - for `step >= max_steps`: `min_lr`;
# - in between: `progress = (step - warmup_steps) / (max_steps - warmup_steps)` goes from
#   0 to 1, `coeff = 0.5 * (1 + cos(pi * progress))` from 1 to 0, and the rate is
#   `min_lr + coeff * (max_lr - min_lr)`.


# %%
def lr_schedule(
    step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    """Learning rate at step (0-based): linear warmup to max_lr, then cosine decay to min_lr."""
    # BEGIN SOLUTION
    # HINT: three cases: warmup, after the end, and the cosine in between.
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr + coeff * (max_lr - min_lr)
    # END SOLUTION


# %%
lr_schedule = checks.check_lr_schedule(lr_schedule)

# %%
from gpt2course.train import TrainConfig

run = TrainConfig(max_steps=MAX_STEPS, learning_rate=2e-3, min_lr=2e-4, warmup_steps=50)
steps = list(range(MAX_STEPS))
lrs = [
    lr_schedule(
        s,
        max_lr=run.learning_rate,
        min_lr=run.min_lr,
        warmup_steps=run.warmup_steps,
        max_steps=run.max_steps,
    )
    for s in steps
]
fig, ax = plt.subplots(figsize=(5, 2.6))
ax.plot(steps, lrs)
ax.axvline(run.warmup_steps, color="gray", ls=":", label="end of warmup")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.legend()
plt.show()

# %% [markdown]
# ## Gradient clipping and gradient accumulation
# Now and then one batch gives a huge gradient, and one huge step can undo hours of
# training. **Clipping** rescales the whole gradient whenever its norm (the length of all
# gradients as one long vector) exceeds `grad_clip`, usually 1.0. Its direction is kept.
#
# Bigger batches give less noisy gradients, but must fit in memory. **Gradient
# accumulation** runs several micro-batches one after another and adds their gradients
# before one update: `loss.backward()` adds into `.grad` rather than overwriting it.
# Divide each micro-batch's loss by their number, and the sum is the gradient of their
# mean: exactly the gradient of one big batch.
#
# Write one training step: set the learning rate, clear the gradients, accumulate over
# the micro-batches, clip, update, and return the mean loss as a float. (The check uses
# plain SGD on a tiny GPT, where every mistake with the gradients shows in the weights.)


# %%
def train_step(model, optimizer, micro_batches, lr: float, grad_clip: float = 1.0) -> float:
    """One optimizer step over a list of (x, y) micro-batches; returns their mean loss."""
    # BEGIN SOLUTION
    # HINT: the learning rate is a setting of each of optimizer.param_groups.
    # HINT: clip after the last backward and before the update.
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for x, y in micro_batches:
        loss = lm_loss(model(x), y)  # your loss, on the model's logits
        (loss / len(micro_batches)).backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total / len(micro_batches)
    # END SOLUTION


# %%
train_step = checks.check_train_step(train_step)

# %% [markdown]
# A quick proof that accumulation is exact: the gradient of two micro-batches of 8 equals
# the gradient of the batch of 16 they came from, up to float rounding (the sums are added
# in another order, so the last bits differ, and differ from one CPU to the next).

# %%
x, y = train_batches.batch(0)
x, y = x.to(device), y.to(device)
half = len(x) // 2
model.zero_grad()
for xs, ys in [(x[:half], y[:half]), (x[half:], y[half:])]:
    (lm_loss(model(xs), ys) / 2).backward()
accumulated = model.lm_head.weight.grad.clone()
model.zero_grad()
lm_loss(model(x), y).backward()
difference = (accumulated - model.lm_head.weight.grad).abs().max().item()
print("equal within 1e-6:", difference < 1e-6)

# %% [markdown]
# ## Validation loss and perplexity
# The training loss is measured on the batch the model is about to learn from; the
# validation loss on text it never sees. If the two drift apart, the model is memorising.
# **Perplexity** is $e^{\text{loss}}$: the model is as unsure as if it picked uniformly
# among that many tokens. An untrained byte model has perplexity 256; a good one a few.

# %%
from gpt2course.train import evaluate

val_loss = evaluate(model, val_batches, max_batches=5)
print(f"after 21 steps: validation loss {val_loss:.3f}, perplexity {math.exp(val_loss):.1f}")

# %% [markdown]
# ## The real run
# `gpt2course.train.train` is the loop above with all the pieces, and here it runs yours:
# your model, your `lm_loss`, your `lr_schedule` and your `train_step`. Around them it adds
# AdamW with weight decay, a validation loss every `eval_interval` steps, a progress bar,
# checkpoints, and **callbacks**: here a loss plot that redraws while it trains, and a
# sample of text at every evaluation, so you can watch Shakespeare's layout appear: first
# spaces and line breaks, then speaker names in capitals followed by a colon, then words.
#
# Full run: 6.8 minutes on a quiet 2-core CPU (measured; the instructor guide), much longer
# on a busy one (a browser full of tabs, a video call): the recording below says how busy
# its machine was.

# %% record:run
# NBVAL_IGNORE_OUTPUT
from gpt2course.callbacks import LivePlot, PrintSamples
from gpt2course.train import train

torch.manual_seed(1337)
model = GPT(config)
run = TrainConfig(
    max_steps=MAX_STEPS,
    learning_rate=2e-3,
    min_lr=2e-4,
    warmup_steps=50,
    weight_decay=0.1,
    grad_clip=1.0,
    grad_accum_steps=1,
    eval_interval=max(MAX_STEPS // 6, 1),
    eval_batches=20,
)
t0 = time.perf_counter()
history = train(
    model,
    train_batches,
    val_batches,
    run,
    callbacks=[LivePlot(), PrintSamples(tok)],
    loss_fn=lm_loss,  # yours
    step_fn=train_step,  # yours
    lr_fn=lr_schedule,  # yours
)
minutes = (time.perf_counter() - t0) / 60

# %% record:final
# NBVAL_IGNORE_OUTPUT
final = history.val_loss[-1]
print(
    f"{history.step[-1]} steps in {minutes:.1f} min: validation loss {final:.3f}, perplexity {math.exp(final):.1f}"
)
if QUICK:
    print("(quick mode: a tiny model for a few seconds; the full run reaches about 1.85)")
else:
    print(f"target: below {TARGET}:", "reached" if final < TARGET else "not reached")

# %% [markdown]
# **Is my result normal?** The card puts your validation loss beside the band of recorded
# runs of this notebook's default settings (one per seed), and when it falls outside, names
# the likely causes.

# %%
from gpt2course.recorded import report_card

report_card("06_pretraining", {"validation loss": final})

# %% [markdown]
# Let it write. Temperature 0.8 sharpens the distribution a little; the seed makes the
# sample repeatable. (In quick mode the model is too small and too short-trained to say
# much.)

# %% record:sample
# NBVAL_IGNORE_OUTPUT
from gpt2course.generation import sample_text

print(sample_text(model, tok, prompt="ROMEO:\n", max_new_tokens=400, temperature=0.8, seed=0))

# %% [markdown]
# ## Saving and resuming
# A checkpoint is a folder of **safetensors** files (plain tensors, nothing executable,
# unlike pickle-based `.pt` files) and JSON: the weights, AdamW's moments, the step, the
# position in the data stream and the loss history. With all of it, a stopped run carries
# on as if it had never stopped.

# %%
from gpt2course.checkpoint import load_checkpoint, save_checkpoint
from gpt2course.pretrained import load_weights

ckpt_dir = save_checkpoint(
    "checkpoints/06_shakespeare",
    model,
    step=history.step[-1],
    history=history.to_dict(),
    extra={"tokenizer": "bytes"},
)
for f in sorted(ckpt_dir.iterdir()):
    print(f"{f.name:24s} {f.stat().st_size / 1e6:6.2f} MB")
# Back into your GPT class: the weights file is GPT-2's own layout, which load_weights reads.
restored = load_weights(GPT(load_checkpoint(ckpt_dir).config), ckpt_dir).to(device)
x, _ = val_batches.batch(0)
with torch.no_grad():
    diff = (model.eval()(x.to(device)) - restored.eval()(x.to(device))).abs().max().item()
# Within rounding: another device or kernel may add the same numbers in another order.
print("same predictions after loading:", diff < 1e-5)

# %% [markdown]
# To test resuming, train a small model for 20 steps in one go; then again, with a
# callback that "crashes" at step 13 (as a closed laptop or a lost Colab session would).
# `train` saves a checkpoint every 4 steps; resuming from the last one (step 12) must give
# the very same losses.


# %%
from gpt2course.callbacks import Callback


class CrashAt(Callback):
    """Stop the run by raising, like Ctrl-C."""

    def __init__(self, step: int):
        self.at = step

    def on_step(self, state):
        if state.step == self.at:
            raise KeyboardInterrupt


small = GPTConfig(vocab_size=256, context_length=32, n_embd=32, n_layer=1, n_head=2)
short = dict(
    max_steps=20, warmup_steps=4, eval_interval=10, eval_batches=2, progress=False, device="cpu"
)
demo_batches = RandomBatches(train_ids, 4, 32, seed=7)
demo_val = RandomBatches(val_ids, 4, 32, seed=1)

torch.manual_seed(0)
straight = train(GPT(small), demo_batches, demo_val, TrainConfig(**short))

torch.manual_seed(0)
crashing = TrainConfig(**short, checkpoint_dir="checkpoints/06_resume_demo", checkpoint_interval=4)
try:
    train(GPT(small), demo_batches, demo_val, crashing, callbacks=[CrashAt(13)])
except KeyboardInterrupt:
    print("crashed at step 13")
ckpt = load_checkpoint("checkpoints/06_resume_demo")
print("checkpoint at step", ckpt.step)
resumed = train(GPT(small), demo_batches, demo_val, crashing, resume=ckpt)
print("identical losses:", resumed.train_loss == straight.train_loss)

# %%
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot(straight.step, straight.train_loss, lw=3, alpha=0.4, label="without stopping")
ax.plot(
    resumed.step[ckpt.step :], resumed.train_loss[ckpt.step :], "k.", label="resumed from step 12"
)
ax.set_xlabel("step")
ax.set_ylabel("train loss")
ax.legend()
plt.show()

# %% [markdown]
# ## From the shell, and on many GPUs
# The same loop runs from a terminal, with presets and `section.key=value` overrides:
#
# ```bash
# # this notebook's run
# python -m gpt2course train --preset shakespeare-bytes --samples --out checkpoints/shakespeare-bytes
# # the catch-up checkpoint for later parts: GPT-2's tokenizer, so tiktoken reads its ids
# python -m gpt2course train --preset shakespeare-gpt2 --out checkpoints/shakespeare-gpt2
# # carry on, or change a setting
# python -m gpt2course train --preset shakespeare-bytes --resume checkpoints/shakespeare-bytes train.max_steps=2000
# ```
#
# A checkpoint loads back with `load_checkpoint(folder)`: `.model` is the trained GPT and
# `.extra["tokenizer"]` names its tokenizer (`get_tokenizer` makes it).
#
# Under `torchrun` it trains **data-parallel**: each process holds a copy of the model,
# takes its own shard of every batch, and `DistributedDataParallel` averages the gradients
# across processes during the backward pass (NCCL on GPUs, gloo on CPUs). Two processes
# with one micro-batch each take exactly the step that one process takes with two, and
# the test suite checks that their loss curves agree.
#
# ```bash
# torchrun --standalone --nproc_per_node=8 -m gpt2course train --preset gpt2-124m \
#     data.train_bin=fineweb_train.bin data.val_bin=fineweb_val.bin --out checkpoints/gpt2-124m
# ```
#
# The `gpt2-124m` preset is GPT-2 small's shape with the recipe of a later reproduction,
# Karpathy's build-nanogpt, which borrows the GPT-3 paper's hyperparameters for a model of
# this size: about half a million tokens per step (the accumulation adapts to the number of
# GPUs), 6e-4 peak learning rate, 715 warmup steps. OpenAI's own recipe for GPT-2 is not
# published in that detail: the paper says each size's learning rate was tuned by hand for
# the best perplexity on held-out WebText. Its token files are GPT-2 ids as raw `uint16`, which you make
# once from a corpus such as FineWeb-Edu; build-nanogpt's README puts its 10B-token run at
# about an hour (and about $10) on a rented node of 8 GPUs.
#
# ## What we have
# A training loop you wrote, and its grown-up form: AdamW with weight decay on matrices,
# warmup + cosine, clipping and accumulation, validation and perplexity, checkpoints that
# resume exactly, and a path to many GPUs. The next part loads the weights OpenAI got by
# running this loop on 40 GB of web text.
