# %% [markdown]
# GPT-2's lasting value is that anyone can **adapt** it: take the published weights and
# train them a little more on your own text. This notebook does that twice:
#
# 1. **full fine-tuning**: every weight keeps learning, as in pretraining;
# 2. **LoRA** (low-rank adaptation, Hu et al. 2021), written from scratch: the base weights
#    stay frozen and small adapter matrices learn the change;
#
# then compares what each costs (trainable parameters, memory) and buys (validation loss and perplexity),
# saves the adapters alone (kilobytes instead of the whole model), and merges them back
# into the weights.
#
# Exercises: the LoRA layer, freezing the base, merging.
#
# *Machine time: about 7 minutes on a quiet 2-core CPU with no GPU (measured 2026-12-07),
# most of it pretraining the tiny base and the two fine-tuning runs; start the base model's
# cell before you read on.*

# %% [markdown] instructor
# ⏱ About 45 minutes a learner (the guide's estimate: 9 reading, 34 for the exercises).
# The key picture is the one after the exercise header: W frozen, B A
# beside it. Where learners stall: the shapes of A (r, in) and B (out, r), forgetting that
# LayerNorms are parameters too when freezing, and the transpose in the merge (a square
# layer hides it). The real-GPT-2 path (a GPU, full setting) has not been timed on a T4 yet.

# %%
import copy
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2course
from gpt2course import checks, lora, workbench
from gpt2course.checkpoint import save_checkpoint
from gpt2course.device import pick_device, quick_mode
from gpt2course.data import RandomBatches, encode_text, text_file
from gpt2course.generation import sample_text
from gpt2course.model import GPTConfig
from gpt2course.tokenizer.named import get_tokenizer
from gpt2course.train import TrainConfig, evaluate, train

device = pick_device()
QUICK = quick_mode()
# Your text: a folder of .txt files, or None for Tiny Shakespeare.
TEXT_DIR = None
# The base model: "gpt2" (OpenAI's 124M weights, downloaded once; best on a GPU) or "tiny"
# (a small byte-level GPT pretrained below in seconds, for a CPU or no network).
BASE = "gpt2" if torch.cuda.is_available() and not QUICK else "tiny"
# Steps. Full setting beside the quick one (the automatic tests use the quick one).
BASE_STEPS = 150 if QUICK else 1000  # pretraining of the tiny base
FT_STEPS = 40 if QUICK else 200  # each fine-tuning run
RANK, ALPHA = 8, 16
print("device:", device, "| base:", BASE)

# %% [markdown]
# The model to fine-tune is yours: part 5's `GPT` from your workbench (with OpenAI's
# weights loaded into it when `BASE = "gpt2"`, as in part 7).

# %%
# NBVAL_IGNORE_OUTPUT
GPT = workbench.use("GPT")

# %% [markdown]
# ## Your text
# Put any `.txt` files in a folder and set `TEXT_DIR` above: your e-mails, a novel, song
# lyrics, code. Each file is one document. The last 10% is kept aside to measure how well
# each model predicts text it never trained on.
#
# `encode_text` below reads the files as a stream, a little at a time, so a folder of
# gigabytes needs memory for its token ids only, never for the whole text at once.


# %%
TEXT = TEXT_DIR or "shakespeare"
files = sorted(Path(TEXT).rglob("*.txt")) if TEXT_DIR else [text_file(TEXT)]
if not files:
    raise FileNotFoundError(f"no .txt files under {TEXT}; put some there or set TEXT_DIR = None")
with open(files[0], encoding="utf-8") as f:
    start = f.read(200)
print(f"{len(files)} file(s), {sum(f.stat().st_size for f in files):,} bytes. It begins:\n")
print(start)

# %% [markdown]
# ## The base model
# With `BASE = "gpt2"` we load OpenAI's GPT-2 (124M) as in part 7, and use its tokenizer.
#
# With `BASE = "tiny"` (the default on a CPU, and what the automatic tests run) we need a
# base model that has learned *something else* first, otherwise there is nothing to adapt.
# The course has one text at hand that is not Shakespeare: its own source code. So the tiny
# base is a byte-level GPT, the shape of part 6's, pretrained for a few seconds on the
# Python files of the `gpt2course` package. Fine-tuning must then move it from code to your
# text, which is easy to see in its samples.

# %%
# NBVAL_IGNORE_OUTPUT
if BASE == "gpt2":
    from gpt2course import pretrained

    weights, _ = pretrained.course_checkpoint("gpt2")
    config = pretrained.config_from_hf(json.loads((weights.parent / "config.json").read_text()))
    base = pretrained.load_weights(GPT(config), weights).to(device)
    tok = get_tokenizer("gpt2")
    BLOCK_SIZE, BATCH_SIZE, LR = 256, 8, 1e-4
else:
    tok = get_tokenizer("bytes")
    BLOCK_SIZE, BATCH_SIZE, LR = (64, 16, 1e-3) if QUICK else (128, 16, 1e-3)
    n_layer, n_embd = (2, 64) if QUICK else (4, 128)
    code = "\n\n".join(
        p.read_text(encoding="utf-8")
        for p in sorted(Path(gpt2course.__file__).parent.rglob("*.py"))
    )
    code_ids = torch.tensor(tok.encode(code))
    torch.manual_seed(0)
    base = GPT(
        GPTConfig(
            vocab_size=256, context_length=BLOCK_SIZE, n_layer=n_layer, n_head=4, n_embd=n_embd
        )
    )
    train(
        base,
        RandomBatches(code_ids, BATCH_SIZE, BLOCK_SIZE, seed=0),
        None,
        TrainConfig(
            max_steps=BASE_STEPS,
            learning_rate=2e-3,
            min_lr=2e-4,
            warmup_steps=20,
            device=str(device),
        ),
    )
print(f"base model: {sum(p.numel() for p in base.parameters()):,} parameters")

# %% [markdown]
# The held-out split and a first measurement: the base model's loss on your text, and what
# it writes when prompted with its first line.

# %%
# NBVAL_IGNORE_OUTPUT
ids = encode_text(TEXT, tok)  # every file, read and encoded as a stream
n_train = int(0.9 * len(ids))
train_ids, val_ids = ids[:n_train], ids[n_train:]
train_batches = RandomBatches(train_ids, BATCH_SIZE, BLOCK_SIZE, seed=1)
val_batches = RandomBatches(val_ids, BATCH_SIZE, BLOCK_SIZE, seed=2)
EVAL_BATCHES = 4 if QUICK else 20
PROMPT = start[:40]

base.to(device)
base_loss = evaluate(base, val_batches, EVAL_BATCHES)
print(f"base model, validation loss on your text: {base_loss:.3f}\n")
print(PROMPT + sample_text(base, tok, PROMPT, max_new_tokens=120, seed=0))

# %% [markdown]
# ## 1. Full fine-tuning
# The same loop as pretraining (part 6's `train`), started from the base weights, with a
# smaller learning rate so as not to wreck what the model knows. We keep the numbers of each
# run in `results`. Memory here is what training holds besides activations: weights,
# gradients and AdamW's two moments per trainable parameter, 4 bytes each in fp32.


# %%
def finetune(model: nn.Module, lr: float) -> dict:
    """Train ``model`` for FT_STEPS steps on the text; return its numbers."""
    config = TrainConfig(
        max_steps=FT_STEPS,
        learning_rate=lr,
        min_lr=lr / 10,
        warmup_steps=FT_STEPS // 10,
        weight_decay=0.0,
        eval_interval=max(1, FT_STEPS // 4),
        eval_batches=EVAL_BATCHES,
        device=str(device),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    history = train(model, train_batches, val_batches, config)
    trainable, total = lora.parameter_counts(model)
    return {
        "trainable": trainable,
        "total": total,
        "memory_MB": lora.training_memory_bytes(model)["total"] / 1e6,
        "peak_cuda_MB": torch.cuda.max_memory_allocated() / 1e6 if device.type == "cuda" else None,
        "val_loss": history.val_loss[-1],
        "seconds": time.perf_counter() - start,
        "history": history,
    }


# %%
# NBVAL_IGNORE_OUTPUT
full = copy.deepcopy(base)
results = {"full": finetune(full, lr=LR)}
r = results["full"]
print(
    f"full fine-tuning: {r['trainable']:,} trainable parameters, val loss {base_loss:.3f} -> {r['val_loss']:.3f}"
)

# %% [markdown]
# ## 2. LoRA from scratch
# Fine-tuning changes each weight matrix $W$ (out × in) by some $\Delta W$. The LoRA paper's
# bet: for adapting a model, $\Delta W$ has low rank, so write it as a product of two thin
# matrices, $\Delta W = \frac{\alpha}{r} B A$ with $A$ (r × in) and $B$ (out × r), and train
# only those. For GPT-2's `c_attn` (2304 × 768) at rank 8 that is 24,576 numbers instead of
# 1.77 million.
#
# The layer computes $h = W x + b + \frac{\alpha}{r} B A x$:
# - $W$ and $b$ are frozen;
# - $A$ starts random and **$B$ starts at zero**, so $BA = 0$ and the adapted model begins
#   exactly as the base model;
# - $\alpha / r$ keeps the update's size steady when you change the rank.

# %%
fig, ax = plt.subplots(figsize=(6.5, 2.4))
ax.set_xlim(0, 13), ax.set_ylim(0, 5), ax.axis("off")
boxes = [
    (0.3, 0.5, 3.2, 4, "W (out × in)\nfrozen", "#cfd8dc"),
    (5.2, 0.5, 0.6, 4, "B\nout×r", "#ffcc80"),
    (6.2, 3.9, 3.2, 0.6, "A (r × in)", "#ffcc80"),
]
for x0, y0, w, h, label, colour in boxes:
    ax.add_patch(plt.Rectangle((x0, y0), w, h, color=colour))
    ax.text(x0 + w / 2, y0 + h / 2, label, ha="center", va="center", fontsize=9)
ax.text(4.35, 2.5, "+", fontsize=18, ha="center", va="center")
ax.text(10.9, 2.5, "trainable:\nr·(in + out)\nnumbers", fontsize=9, va="center")
ax.set_title("LoRA: a frozen weight plus a low-rank product B A", fontsize=10)
plt.show()

# %% [markdown]
# ### Exercise: the LoRA layer
# Write `LoRALinear`, an `nn.Linear` (so it keeps `weight` and `bias` under their usual
# names, and a base checkpoint still loads) with two more parameters, `lora_A` and `lora_B`,
# and a `scaling` of `alpha / rank`. Freeze `weight` and `bias`; in `forward`, add the
# update to the base output. Go through the bottleneck (`x @ A.T @ B.T`) rather than forming
# the big `B @ A`.


# %%
class LoRALinear(nn.Linear):
    """nn.Linear with a frozen weight and a trainable low-rank update (alpha / r) B A."""

    def __init__(
        self, in_features: int, out_features: int, rank: int, alpha: float, bias: bool = True
    ):
        super().__init__(in_features, out_features, bias=bias)
        # BEGIN SOLUTION
        # HINT: nn.Parameter(torch.empty(rank, in_features)) with nn.init.kaiming_uniform_(..., a=5 ** 0.5) for A; torch.zeros for B.
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=5**0.5)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        # HINT: F.linear(x, self.weight, self.bias) is the base output (..., out).
        base = F.linear(x, self.weight, self.bias)  # (..., out)
        update = x @ self.lora_A.T @ self.lora_B.T  # (..., in) -> (..., r) -> (..., out)
        return base + self.scaling * update
        # END SOLUTION


# %%
LoRALinear = checks.check_lora_linear(LoRALinear)

# %% [markdown]
# ### Exercise: freeze everything but the adapters
# The layer froze its own base weight, but the model has other parameters: embeddings,
# LayerNorms, the layers we do not adapt. Write `mark_only_lora_trainable(model)`, which
# leaves trainable exactly the parameters whose names end in `lora_A` or `lora_B`.


# %%
def mark_only_lora_trainable(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the adapters."""
    # BEGIN SOLUTION
    # HINT: model.named_parameters() gives (name, parameter); p.requires_grad_(flag) sets it.
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(("lora_A", "lora_B")))
    return model
    # END SOLUTION


# %%
mark_only_lora_trainable = checks.check_mark_only_lora_trainable(mark_only_lora_trainable)

# %% [markdown]
# Now put adapters on attention's `c_attn` and both MLP layers of every block, with your
# class. `lora.apply_lora` swaps each matching `nn.Linear` for a `LoRALinear` that shares its
# weight. Two checks before training: the adapted model gives *exactly* the base model's
# logits (B is zero), and the trainable parameters are a small fraction of the whole.

# %%
lora_model = copy.deepcopy(base)
lora.apply_lora(
    lora_model, ["c_attn", "mlp.c_fc", "mlp.c_proj"], rank=RANK, alpha=ALPHA, layer_cls=LoRALinear
)
mark_only_lora_trainable(lora_model)
x_check = val_ids[:BLOCK_SIZE][None].to(device)
with torch.no_grad():
    same = torch.equal(lora_model(x_check), base(x_check))
trainable, total = lora.parameter_counts(lora_model)
print("same logits as the base model before training:", same)
print(f"trainable: {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")

# %% [markdown]
# LoRA takes a larger learning rate than full fine-tuning: the adapters start from zero and
# are few.

# %%
# NBVAL_IGNORE_OUTPUT
results["lora"] = finetune(lora_model, lr=10 * LR)
r = results["lora"]
print(
    f"LoRA: {r['trainable']:,} trainable parameters, val loss {base_loss:.3f} -> {r['val_loss']:.3f}"
)

# %% [markdown]
# ## Full fine-tuning against LoRA

# %% record:table
# NBVAL_IGNORE_OUTPUT
# Perplexity is exp(loss), the measure of part 7: per token of this model's tokenizer.
print(
    f"{'':6} {'trainable':>12} {'memory (MB)':>12} {'val loss':>9} {'perplexity':>10} {'seconds':>8}"
)
print(f"{'base':6} {'':>12} {'':>12} {base_loss:9.3f} {math.exp(base_loss):10.2f}")
for name, r in results.items():
    print(
        f"{name:6} {r['trainable']:12,} {r['memory_MB']:12.2f} {r['val_loss']:9.3f} "
        f"{math.exp(r['val_loss']):10.2f} {r['seconds']:8.1f}"
    )
if device.type == "cuda":
    print(
        "peak CUDA memory (MB), activations included:",
        {k: round(r["peak_cuda_MB"]) for k, r in results.items()},
    )

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
for name, r in results.items():
    h = r["history"]
    ax1.plot([0, *h.val_step], [base_loss, *h.val_loss], marker="o", label=name)
ax1.set_xlabel("step"), ax1.set_ylabel("validation loss"), ax1.legend()
mem = lora.training_memory_bytes(full)
mem_lora = lora.training_memory_bytes(lora_model)
parts = ["weights", "gradients", "optimizer"]
for i, m in enumerate([mem, mem_lora]):
    bottom = 0.0
    for part, colour in zip(parts, ["#90a4ae", "#ffb74d", "#e57373"], strict=True):
        ax2.bar(i, m[part] / 1e6, bottom=bottom, color=colour, label=part if i == 0 else None)
        bottom += m[part] / 1e6
ax2.set_xticks([0, 1], ["full", "LoRA"]), ax2.set_ylabel("MB"), ax2.legend(fontsize=8)
ax2.set_title("training memory (no activations)", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# What to read in it:
# - **Trainable parameters** drop by one to two orders of magnitude, and with them the
#   gradients and AdamW's moments, which in full fine-tuning take three times the weights'
#   memory. For GPT-2 124M in fp32: 0.5 GB of weights, 1.5 GB more to train all of them;
#   rank-8 adapters on `c_attn` and the MLP are 1.0M parameters (0.8%), about 16 MB to
#   train. Activations (not counted here) are much the same for both.
# - **Perplexity**, part 7's measure, is the exponential of the loss: on a byte-level base
#   it counts bytes, not GPT-2 tokens, so compare it only within this table.
# - **Loss**: full fine-tuning usually ends a little lower: it can change everything. LoRA
#   gets most of the way with a fraction of the memory for training and of the storage (a
#   few MB of adapters per task instead of a copy of the model), and the better the base
#   model, the closer it gets: the LoRA paper matched full fine-tuning of GPT-2 medium and large on its
#   benchmarks. The tiny base here, pretrained for seconds, leaves LoRA more to do, and in
#   the quick test run both are barely trained.
# - **Seconds**: LoRA is not faster per step, and here it can be slower: every step still
#   runs the whole model forward and backward (the gradient must flow through the frozen
#   layers to reach the adapters), plus the adapters' own small matmuls. What it saves is
#   memory and storage, not compute.
# - The measured figures for GPT-2 124M's shape are in `docs/benchmarks.md` (`## finetuning`).

# %% [markdown]
# ## Save the adapters alone
# The base model is the same for everyone; only the adapters are yours. `save_adapters`
# writes just `lora_A` and `lora_B` (plus the rank and alpha) to a safetensors file.
# `load_adapters` puts them on a fresh copy of the base.

# %%
# NBVAL_IGNORE_OUTPUT
folder = Path(tempfile.mkdtemp())
adapter_file = lora.save_adapters(lora_model, folder / "adapters.safetensors")
full_dir = save_checkpoint(folder / "full", full)
full_bytes = sum(f.stat().st_size for f in full_dir.iterdir())
print(
    f"adapters: {adapter_file.stat().st_size / 1e6:.3f} MB   whole model: {full_bytes / 1e6:.1f} MB"
)

# %%
restored = lora.load_adapters(copy.deepcopy(base), adapter_file).to(device)
with torch.no_grad():
    print(
        "restored adapters give the same logits:",
        torch.equal(restored(x_check), lora_model(x_check)),
    )

# %% [markdown]
# ## Merge the adapters into the weights
# At inference, the extra matmuls cost time. Since $W x + \frac{\alpha}{r} B A x =
# (W + \frac{\alpha}{r} B A) x$, we can fold each adapter into its weight once and get a plain
# GPT back, exactly as fast as the base.
#
# ### Exercise: the merged weight
# Write `merged_weight(layer)` for one `LoRALinear`. Mind the shapes: `nn.Linear` stores its
# weight as (out, in).


# %%
def merged_weight(layer: nn.Module) -> torch.Tensor:
    """W + (alpha / r) B A, shape (out_features, in_features)."""
    # BEGIN SOLUTION
    # HINT: layer.lora_B is (out, r) and layer.lora_A is (r, in).
    return layer.weight + layer.scaling * (layer.lora_B @ layer.lora_A)
    # END SOLUTION


# %%
merged_weight = checks.check_merged_weight(merged_weight)

# %% [markdown]
# `lora.merge_lora` does this for every adapted layer, here with your `merged_weight`, and
# puts plain `nn.Linear` layers back. The merged model gives the adapter model's logits, up
# to float rounding.

# %%
merged = lora.merge_lora(copy.deepcopy(lora_model), weight_fn=merged_weight)
with torch.no_grad():
    diff = (merged(x_check) - lora_model(x_check)).abs().max().item()
print("LoRA layers left:", sum(hasattr(m, "lora_A") for m in merged.modules()))
print("max |merged - adapters| logit difference below 1e-4:", diff < 1e-4)

# %% [markdown]
# And what the fine-tuned models write now, from the same prompt as the base model above:

# %% record:samples
# NBVAL_IGNORE_OUTPUT
for name, model in [("full fine-tuning", full), ("LoRA, merged", merged)]:
    print(f"--- {name}")
    print(PROMPT + sample_text(model, tok, PROMPT, max_new_tokens=120, seed=0))

# %% [markdown]
# **Is my result normal?** The card puts your two validation losses beside the bands of
# recorded runs of this notebook's default settings (one per seed, on a CPU, so with the
# tiny base), and when one falls outside, names the likely causes.

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course.recorded import report_card

report_card(
    "08_finetuning",
    {
        f"full fine-tuning validation loss ({BASE} base)": results["full"]["val_loss"],
        f"LoRA validation loss ({BASE} base)": results["lora"]["val_loss"],
    },
)

# %% [markdown]
# ## Summary
# - Fine-tuning is pretraining continued on your text, from pretrained weights, gently.
# - LoRA freezes the base and learns $\frac{\alpha}{r} B A$ beside each chosen weight:
#   B starts at zero so the model starts as the base; a small fraction of the parameters
#   train, so gradients and optimizer state shrink by as much.
# - Adapters are saved alone (one base, many small adapters) and merge back into plain
#   weights at no inference cost.
#
# Next, part 9: from GPT-2 to ChatGPT, fine-tuning a model to follow instructions.
