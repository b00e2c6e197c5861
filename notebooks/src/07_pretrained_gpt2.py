# %% [markdown]
# Everything so far ran on weights we trained ourselves, on a laptop's budget. OpenAI
# trained GPT-2 on 40 GB of web text and published the weights. Our `GPT` from part 5 has
# exactly GPT-2's architecture, so those weights fit it: this notebook loads them, proves the
# loading exact, and then looks at what the real model can do.
#
# 1. open the checkpoint and map each of its tensors to one of our modules (the exercise:
#    four of them must be transposed);
# 2. load it, and check our logits against Hugging Face `transformers`' own GPT-2;
# 3. generate: greedy against sampled; the four sizes, 124M to 1.5B parameters;
# 4. look inside: real attention patterns, and the next-token distribution;
# 5. measure it: perplexity on held-out text;
# 6. what GPT-2 does without any fine-tuning (summaries, answers, translations), and its
#    honest limits.
#
# **About the outputs you see here.** The committed notebook was run by an automatic test on a
# machine with no internet, so it used a small *stand-in* with random weights (a banner says
# so wherever that happens). Its texts are noise. The text cells say what GPT-2 itself gives;
# run the notebook (Colab, or any machine with internet) to see the real thing.

# %% [markdown] instructor
# ⏱ About 65 minutes a learner (the guide's estimate: 18 reading, 46 for the exercises).
# The payoff notebook: let learners play with prompts. The exercise is
# short; the classic stall is `attn.c_proj`, which is square, so forgetting its transpose
# raises no shape error. Download of gpt2 (550 MB) takes under a minute on Colab: start the
# first cells before talking. Larger sizes: gpt2-medium (1.5 GB) is fine on a T4; gpt2-xl
# (6.4 GB) takes minutes to download, demo it rather than have 30 people fetch it at once.

# %%
import json
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from gpt2course import checks, pretrained, workbench
from gpt2course.assets import fetch, tiktoken_gpt2
from gpt2course.device import pick_device, pick_dtype, quick_mode
from gpt2course.generation import generate
from gpt2course.model import GPT as PackageGPT
from gpt2course.model import GPTConfig
from gpt2course.tokenizer import load_gpt2_tokenizer
from gpt2course.widgets.attention import attention_viewer
from gpt2course.widgets.sampling import sampling_playground

device = pick_device()

# Sizes. Quick mode (the automatic tests) keeps every run short; the full settings are beside.
NEW_TOKENS = 20 if quick_mode() else 100  # tokens per generated text
TASK_TOKENS = 8 if quick_mode() else 20  # tokens per zero-shot answer
PPL_TOKENS = 1_024 if quick_mode() else 32_768  # held-out tokens for the perplexity
# The sizes to load and compare (each is downloaded once: 0.55, 1.5, 3.3 and 6.4 GB).
COMPARE = [] if quick_mode() else ["gpt2", "gpt2-medium"]  # add "gpt2-large", "gpt2-xl"
print("device:", device)

# %% [markdown]
# Text goes in through part 1's tokenizer: your `encode` and `decode` from your workbench,
# run with GPT-2's 50,000 merges (`load_gpt2_tokenizer().built_on(encode, decode)`), which
# gives exactly tiktoken's ids when they are right. The lines below say whose they are.

# %%
# NBVAL_IGNORE_OUTPUT
encode, decode = workbench.use("encode", "decode")
enc = load_gpt2_tokenizer().built_on(encode, decode)
if workbench.whose(encode) == workbench.whose(decode):
    print(f"Text is encoded and decoded with {workbench.whose(encode)} tokenizer from part 1.")
else:
    print(f"Text is encoded with {workbench.whose(encode)} encode and decoded with "
          f"{workbench.whose(decode)} decode from part 1.")  # fmt: skip
probe = "In a shocking finding, scientists discovered a herd of unicorns"
print("the same ids as tiktoken's:", enc.encode(probe) == tiktoken_gpt2().encode(probe))

# %% [markdown]
# ## The checkpoint
# `course_checkpoint()` finds the weights: by default `gpt2` (124M parameters) from the
# Hugging Face hub, downloaded once into its cache (`openai-community/gpt2`, the file
# `model.safetensors`, 548 MB). Set the environment variable `GPT2COURSE_MODEL` to another
# size (`gpt2-medium`, `gpt2-large`, `gpt2-xl`) or to a folder of your own.
#
# The file is in the **safetensors** format: a JSON header listing every tensor's name, dtype,
# shape and byte range, then the raw bytes. Unlike PyTorch's `.pt`/`.bin` files it cannot
# run code when loaded (those are Python pickles), which is why the course loads nothing else.

# %%
# NBVAL_IGNORE_OUTPUT
weights_path, is_standin = pretrained.course_checkpoint()
# Printed in every cell whose output comes from these weights, so no screenshot misleads.
STANDIN = "[STAND-IN: random weights in GPT-2's format, not OpenAI's: noise, not GPT-2] "
note = STANDIN if is_standin else ""
# Where the file lies differs from machine to machine (the hub's cache): show its name and size.
print(f"{note}{weights_path.name}: {weights_path.stat().st_size / 1e6:,.0f} MB")

# %% [markdown]
# Reading the header costs nothing, so let us list what is inside. For the real gpt2 you
# will see about 160 tensors: `wte.weight (50257, 768)` (a vector per token), `wpe.weight
# (1024, 768)` (a vector per position), then for each of the 12 blocks `h.0.ln_1.weight`,
# `h.0.attn.c_attn.weight (768, 2304)` and so on, and `ln_f`. You will also see
# `h.0.attn.bias (1, 1, 1024, 1024)`: not a weight but the causal mask, saved by the code that
# converted the checkpoint. The names are our modules' names: `model.py` took them from it.

# %%
# NBVAL_IGNORE_OUTPUT
entries = list(pretrained.iter_checkpoint(weights_path))
print(f"{len(entries)} tensors")
for key, shape, dtype in entries:
    if key.removeprefix("transformer.").startswith("h.") and ".h.0." not in f".{key}":
        continue  # every block looks like block 0
    print(f"{key:<36} {str(shape):<22} {dtype}")

# %% [markdown]
# Now the same list from the model's side: yours, part 5's `GPT`, from your workbench (the
# line below says which of its parts are yours). Build an empty one of the checkpoint's
# shape and compare shapes name by name:

# %%
# NBVAL_IGNORE_OUTPUT
GPT, sample_next_token, LayerCache = workbench.use("GPT", "sample_next_token", "LayerCache")

# %%
# NBVAL_IGNORE_OUTPUT
config_path = weights_path.parent / "config.json"
config = pretrained.config_from_hf(json.loads(config_path.read_text()))
with torch.device("meta"):  # shapes only: no memory, no random init
    empty = GPT(config)
ours = {name: tuple(p.shape) for name, p in empty.named_parameters()}
for key, shape, _ in entries:
    name = pretrained.our_name(key)
    if name is None or (name.startswith("h.") and not name.startswith("h.0.")):
        continue  # the mask buffers, and blocks 1 onwards (like block 0)
    verdict = "same" if ours.get(name) == shape else f"ours is {ours.get(name)}"
    print(f"{name:<28} {str(shape):<16} {verdict}")

# %% [markdown]
# Every shape matches except four per block: `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, and
# `mlp.c_proj` weights are stored **transposed**. GPT-2 was written in TensorFlow, with its
# linear layers as "Conv1D" layers that keep their weight as `(in, out)` and compute
# `x @ W + b`. PyTorch's `nn.Linear` keeps `(out, in)` and computes `x @ W.T + b`. Same
# numbers, other layout. Beware `attn.c_proj`: it is `(768, 768)`, so forgetting its
# transpose raises no error, it just gives wrong text.
#
# (Where is the output layer, `lm_head`? GPT-2 ties it to `wte`: the same matrix turns
# tokens into vectors at the bottom and vectors into token scores at the top, so the
# checkpoint stores it once.)
#
# ### Exercise: a Conv1D layer as an `nn.Linear`
# Write `linear_from_conv1d(weight, bias)`: given a Conv1D layer's weight `(in, out)` and
# bias `(out,)`, return an `nn.Linear` that computes the same `x @ weight + bias`.


# %%
def linear_from_conv1d(weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    """An nn.Linear computing GPT-2's Conv1D: x @ weight + bias, with weight (in, out)."""
    # BEGIN SOLUTION
    # HINT: nn.Linear(in, out).weight has shape (out, in); copy into it under torch.no_grad().
    n_in, n_out = weight.shape
    layer = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(weight.t())
        layer.bias.copy_(bias)
    return layer
    # END SOLUTION


# %%
linear_from_conv1d = checks.check_linear_from_conv1d(linear_from_conv1d)

# %% [markdown]
# ### Exercise: convert the checkpoint's tensors
# Write `convert_hf_state_dict(hf_sd)`, taking a dict of the checkpoint's tensors and
# returning a dict with our names as keys, ready for `model.load_state_dict`. It must work for
# both layouts in use: the hub file's keys (`h.0.ln_1.weight`) and what `transformers` writes
# today (`transformer.h.0.ln_1.weight`, plus a `lm_head.weight`, which you may drop).

# %%
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert_hf_state_dict(hf_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GPT-2 checkpoint tensors renamed (and, for Conv1D weights, transposed) for our GPT."""
    # BEGIN SOLUTION
    # HINT: the table above shows the three steps: rename what differs, drop what is not a
    # HINT: weight, transpose the weights stored the other way round (your linear_from_conv1d).
    out = {}
    for key, tensor in hf_sd.items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # the tied head is wte; the mask buffers are not weights
        if name.endswith(CONV1D):  # your linear_from_conv1d knows the layout
            bias = hf_sd[key.removesuffix("weight") + "bias"]
            tensor = linear_from_conv1d(tensor, bias).weight.detach()
        out[name] = tensor
    return out
    # END SOLUTION


# %%
convert_hf_state_dict = checks.check_convert_hf_state_dict(convert_hf_state_dict)

# %% [markdown]
# ## Loading, and proving it exact
# Read every tensor, convert with your converter, load into a fresh `GPT` (yours). `load_state_dict` complains about any
# name it does not know or cannot find; only the tied `lm_head.weight` may be "missing".

# %%
st = pretrained.SafetensorsFile(weights_path)
hf_sd = {key: st.read(key) for key in st.keys_in_file_order()}
model = GPT(config)
result = model.load_state_dict(convert_hf_state_dict(hf_sd), strict=False)
print("missing:", result.missing_keys, " unexpected:", result.unexpected_keys)
model = model.to(device).eval()
del hf_sd

# %%
# NBVAL_IGNORE_OUTPUT
print(workbench.describe(model))

# %% [markdown]
# "It loaded" is not "it is right". The independent reference is Hugging Face `transformers`,
# whose GPT-2 is used by thousands of projects: give both models the same tokens, and compare
# the logits (the scores of all 50,257 possible next tokens, at every position). In float32
# they agree up to rounding noise, a few millionths of the logits' size; one weight left
# untransposed, and they differ by whole units.

# %%
# NBVAL_IGNORE_OUTPUT
from transformers import GPT2LMHeadModel
from transformers.utils import logging as transformers_logging

transformers_logging.disable_progress_bar()  # a saved bar would read "0%" on GitHub
hf_model = GPT2LMHeadModel.from_pretrained(weights_path.parent).to(device).eval()
ids = torch.tensor([enc.encode("Hello, I'm a language model, and I can")], device=device)
with torch.no_grad():
    expected = hf_model(ids).logits
    diff = (model(ids) - expected).abs().max().item()
scale = expected.abs().max().item()
print(
    f"largest difference between our logits and transformers': {diff:.2e} (logits reach {scale:.1f})"
)
assert diff < 1e-4 * max(1.0, scale), "the models disagree: is every Conv1D weight transposed?"
del hf_model

# %% [markdown]
# In practice, `pretrained.load_weights(model, "gpt2")` does all of this for any module with
# GPT-2's names, yours included: it reads the tensors one at a time (so the peak memory is
# the model plus one tensor), transposes the Conv1D weights for `nn.Linear` layers, and
# names the tensors that do not fit, with the likely cause (`load_pretrained` does
# the same for the package's own `GPT`, built directly on the device and in the dtype you
# ask for: gpt2-xl, 6.2 GB in float32, peaks at 1.06x its size in RAM, `docs/benchmarks.md`).

# %%
again = pretrained.load_weights(GPT(config), weights_path.parent).to(device).eval()
# A converter that did not pass its check was replaced by the reference's: say whose it is.
whose = "the reference's" if checks.is_handed_back(convert_hf_state_dict) else "your"
with torch.no_grad():
    same = torch.equal(again(ids), model(ids))
print(f"load_weights gives the same logits as {whose} converter:", same)
del again

# %% [markdown]
# ## Is it really GPT-2?
# Agreeing with `transformers` proves the loading; whether the weights are OpenAI's is a
# fact recorded outside this course. Hugging Face's own test suite for GPT-2
# (`tests/models/gpt2/test_modeling_gpt2.py` in the transformers repository) records what
# the real `gpt2` writes after "The dog" under greedy decoding: 18 tokens,
# " was found in a field near the intersection of West and West Streets.\n\nThe dog".
# Your model, with the weights it just took, must write exactly those.

# %%
from gpt2course.pretrained import PUBLISHED_GREEDY, PUBLISHED_PROMPT, greedy_ids

if is_standin:
    print(
        "Cannot check here: these are the random stand-in weights, not OpenAI's. With the "
        "real gpt2 (Colab, or any machine that reaches the hub) this cell compares your "
        f"model's 18 greedy tokens after 'The dog' with the recorded {PUBLISHED_GREEDY[:4]}..."
    )
else:
    got = greedy_ids(model, PUBLISHED_PROMPT, len(PUBLISHED_GREEDY))
    print(repr(enc.decode(PUBLISHED_PROMPT + got)))
    print("✓ your GPT-2 writes the recorded text" if got == PUBLISHED_GREEDY else
          "✗ not the recorded text: the weights are not gpt2's, or a piece differs")  # fmt: skip

# %% [markdown]
# One more copy of the same weights, in the package's `GPT`: it adds what the rest of this
# notebook uses beside your model: the attention weights for the viewer, a KV cache, and
# the CUDA-graph decoder at the end.

# %%
reference = PackageGPT(config).to(device).eval()
reference.load_state_dict(model.state_dict())
print("same logits:", torch.allclose(reference(ids), model(ids), atol=1e-4))

# %% [markdown]
#
# ## Generating
# First **greedy** decoding: always the most likely token. With the real gpt2 this is fluent
# for a sentence or two and then typically falls into a loop, repeating a phrase over and
# over. Greedy is deterministic, so everyone gets the same text.

# %%
# NBVAL_IGNORE_OUTPUT
prompt = "In a shocking finding, scientists discovered a herd of unicorns"
idx = torch.tensor([enc.encode(prompt)], device=device)
greedy = generate(model, idx, NEW_TOKENS, temperature=0)  # your model
print(note + enc.decode(greedy[0].tolist()))
# With a KV cache: your GPT's attention takes none, so the package's GPT (your weights) runs
# it, with your LayerCache from part 5 in each layer.
cached = generate(
    reference, idx, NEW_TOKENS, temperature=0, use_cache=True, layer_cache=LayerCache
)
print(f"the same tokens with {workbench.whose(LayerCache)} KV cache:", torch.equal(cached, greedy))

# %% [markdown]
# Then **sampling** with temperature 0.8 and top-k 40. Top-k with k = 40 is what the GPT-2
# paper and blog post used for their samples (the published samples also show temperature
# 0.7 and 1); 0.8 is our choice. The text varies with the seed; with the real model it reads like a news story that
# wanders off topic after a paragraph. Seeds make it repeatable.

# %%
# NBVAL_IGNORE_OUTPUT
for seed in range(2):
    g = torch.Generator().manual_seed(seed)
    out = generate(  # your model, your sampler from part 5
        model, idx, NEW_TOKENS, temperature=0.8, top_k=40, generator=g, sampler=sample_next_token
    )
    print(f"--- {note}seed {seed}\n{enc.decode(out[0].tolist())}\n")

# %% [markdown]
# How repetitive is each? A simple measure: the share of 3-token sequences (trigrams) that
# already occurred earlier in the text. Human prose scores near 0; once greedy decoding falls
# into a loop, the share climbs with every repetition.


# %%
def repeated_trigrams(ids: list[int]) -> float:
    """Share of the trigrams in ``ids`` that already occurred earlier in it."""
    seen, repeats = set(), 0
    for tri in zip(ids, ids[1:], ids[2:], strict=False):  # ids[2:] is the shortest
        repeats += tri in seen
        seen.add(tri)
    return repeats / max(1, len(ids) - 2)


# %%
# NBVAL_IGNORE_OUTPUT
print(f"{note}greedy:  {repeated_trigrams(greedy[0].tolist()):.2f}")
print(f"{note}sampled: {repeated_trigrams(out[0].tolist()):.2f}")

# %% [markdown]
# ## Four sizes
# OpenAI published four sizes. Their shapes, and the memory their weights need, follow from the
# configs alone (`lm_head` shares `wte`'s memory):

# %%
for name in pretrained.HUB_REPOS:
    c = GPTConfig.from_name(name)
    with torch.device("meta"):
        n = PackageGPT(c).num_params()
    print(
        f"{name:<12} {c.n_layer:>2} layers {c.n_head:>2} heads width {c.n_embd:>4}: "
        f"{n / 1e6:>5.0f}M parameters, {4 * n / 2**30:.2f} GiB in fp32, {2 * n / 2**30:.2f} in fp16"
    )

# %% [markdown]
# Speed and quality need the weights. With `COMPARE` set (see the top), the next cell loads
# each size in half precision on a GPU, times 100 tokens, and prints its continuation of the
# same prompt. What to expect on a Colab T4: every size fits (gpt2-xl takes about 3.2 GB in
# fp16); each step has to read all weights once, so tokens per second fall as the size grows
# (for the small sizes Python's per-step overhead counts as much); and the larger models stay
# on topic and keep facts straight for longer.
# Quick mode (the tests) skips it.

# %%
# NBVAL_IGNORE_OUTPUT
for name in COMPARE:
    m = pretrained.load_pretrained(name, device=device, dtype=pick_dtype(device))
    x = torch.tensor([enc.encode(prompt)], device=device)
    g = torch.Generator().manual_seed(0)
    kw = dict(use_cache=True, layer_cache=LayerCache)  # your cache's store, from part 5
    generate(m, x, 5, **kw)  # warm-up
    t0 = time.perf_counter()
    out = generate(m, x, NEW_TOKENS, temperature=0.8, top_k=40, generator=g, **kw)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = NEW_TOKENS / (time.perf_counter() - t0)
    size = sum(p.numel() * p.element_size() for p in m.parameters()) / 2**30
    print(
        f"=== {name}: {size:.2f} GiB of weights, {rate:.0f} tokens/s\n{enc.decode(out[0].tolist())}\n"
    )
    del m

# %% [markdown]
# ## Inside the real model
# Part 3's attention viewer, now on trained weights. Random weights spread attention evenly;
# GPT-2's heads have specialised. Things to find in gpt2: heads that look at the previous
# token (a bright line just below the diagonal), heads that put almost everything on the
# first token (a place to "park" attention when nothing else is relevant), and in middle
# layers "induction heads": at the second "The cat" they look at what followed the first
# one, " sat", which lets the model copy from earlier text.

# %%
# NBVAL_IGNORE_OUTPUT
title = "STAND-IN (random weights)" if is_standin else "GPT-2, trained weights"
attention_viewer(
    reference, enc, "The cat sat on the mat because it was tired. The cat", title=title
)

# %% [markdown]
# ## Finding the heads
# Looking at one sentence finds a head by luck. A measurement finds them all: feed the model
# 50 random tokens, then the same 50 again, and score every head (`head_scores`, in
# `gpt2course.figures`). Its **previous-token score** is its mean attention from each
# position to the one just before; its **induction score**, its mean attention from each
# token of the repeat to the token that followed it the first time, the one to copy next.
# Random tokens leave nothing to predict from but the repeat, so a head that scores high
# there is doing induction and nothing else. A head that spreads its attention evenly
# over what it sees scores a few hundredths on either. In GPT-2 small, published analyses find previous-token heads
# such as 4.11 and induction heads such as 5.5 and 6.9 (layer.head; Olsson et al. 2022,
# *In-context Learning and Induction Heads*; Wang et al. 2022, *Interpretability in the
# Wild*). Induction heads work with a previous-token head in an earlier layer: one writes
# "the token before me was X" into each position, the other looks for the position where
# that says the current token.

# %%
# NBVAL_IGNORE_OUTPUT
from pathlib import Path

from gpt2course.checkpoint import load_checkpoint
from gpt2course.figures import head_scores, head_scores_figure


def strongest(scores: torch.Tensor, k: int = 3) -> str:
    """The k heads with the highest score, as "layer.head score"."""
    top = scores.flatten().topk(k)
    n_head = scores.shape[1]
    return ", ".join(f"{i // n_head}.{i % n_head} {v:.2f}" for v, i in zip(*top, strict=True))


previous, induction = head_scores(reference)
name = "the STAND-IN (random weights: expect no head to stand out)" if is_standin else "gpt2"
print(f"{name}: previous-token {strongest(previous)}; induction {strongest(induction)}")
head_scores_figure(previous, induction, title=name)
plt.show()

# Part 6's model, if you trained it: a few minutes on Shakespeare is enough for some heads to
# specialise. (A byte-level model: its "tokens" are bytes, the test works the same.)
part6 = Path("checkpoints/06_shakespeare")
if part6.is_dir():
    small = load_checkpoint(part6).model.eval()
    p6, i6 = head_scores(small)
    print(f"part 6's model: previous-token {strongest(p6)}; induction {strongest(i6)}")
    head_scores_figure(p6, i6, title="part 6's Shakespeare model")
    plt.show()
else:
    print("No part-6 checkpoint here (checkpoints/06_shakespeare): run part 6 to score its heads.")

# %% [markdown]
# And the model's whole output at one step: the probability of each possible next token.
# After "The capital of France is", where does " Paris" rank? (The small gpt2 also likes
# vaguer continuations such as " the".) This is what sampling draws from; temperature and
# top-k reshape it.


# %%
def top_next_tokens(model: torch.nn.Module, text: str, k: int = 10) -> list[tuple[str, float]]:
    """The k likeliest next tokens after ``text``, with their probabilities."""
    x = torch.tensor([enc.encode(text)], device=next(model.parameters()).device)
    with torch.no_grad():
        probs = F.softmax(model(x)[0, -1].float(), dim=-1)  # (vocab,)
    p, i = probs.topk(k)
    return [(enc.decode([t]), q) for t, q in zip(i.tolist(), p.tolist(), strict=True)]


# %%
# NBVAL_IGNORE_OUTPUT
top = top_next_tokens(model, "The capital of France is")
fig, ax = plt.subplots(figsize=(5, 3))
# ascii() spells out tokens the plot's font has no glyph for (as "\u30e3") instead of a warning.
ax.barh([ascii(t) for t, _ in top][::-1], [q for _, q in top][::-1])
ax.set_xlabel("probability of the next token")
ax.set_title("after 'The capital of France is'" + (" (STAND-IN)" if is_standin else ""))
plt.tight_layout()
plt.show()

# %% [markdown]
# Part 5's sampling playground, now on the real model: change the prompt, move the
# temperature, top-k and top-p sliders, and watch which tokens stay in the running (blue)
# and which are cut (grey). "Sample one token" appends a draw to the prompt.

# %%
# NBVAL_IGNORE_OUTPUT
sampling_playground(model, enc, prompt="The capital of France is")

# %% [markdown]
# ## A number: perplexity on held-out text
# How well does the model predict text it has not seen? Take the last part of Tiny
# Shakespeare, and at every token measure the cross-entropy of the model's prediction. Its
# exponential is the **perplexity**: the model is, on average, as unsure as if it were picking
# uniformly among that many tokens. Knowing nothing gives 50,257 (the vocabulary size); the
# random stand-in is near that. Text longer than 1,024 tokens is cut into windows; each
# window overlaps the previous one by half, and only its second half is scored, so every
# scored token after the first window sees at least 512 tokens of context (the first
# window is scored whole: its first tokens have little before them).
#
# ### Exercise: the perplexity
# Write `perplexity(model, ids, window)` as just described; it returns a Python float.


# %%
@torch.no_grad()
def perplexity(model: torch.nn.Module, ids: list[int], window: int = 1024) -> float:
    """exp(mean next-token cross-entropy) over ``ids``, in half-overlapping windows."""
    # BEGIN SOLUTION
    # HINT: the window can be no longer than model.config.context_length; step by window // 2.
    # HINT: in every window after the first, set the targets of its first half to -100.
    window = min(window, model.config.context_length)
    stride = window // 2
    dev = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, max(1, len(ids) - 1), stride):
        chunk = torch.tensor([ids[start : start + window + 1]], device=dev)
        x, y = chunk[:, :-1], chunk[:, 1:].clone()  # (1, T), targets shifted by one
        if start > 0:
            y[:, : window - stride] = -100  # scored already, by the previous window
        loss = F.cross_entropy(model(x)[0].float(), y[0], ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((y != -100).sum())
        if start + window + 1 >= len(ids):
            break
    return math.exp(total / count)
    # END SOLUTION


# %%
perplexity = checks.check_perplexity(perplexity)

# %%
# NBVAL_IGNORE_OUTPUT
text = fetch("tinyshakespeare.txt").read_text(encoding="utf-8")
held_out = enc.encode(text[int(0.9 * len(text)) :])[:PPL_TOKENS]
print(f"{note}perplexity on {len(held_out):,} held-out tokens: {perplexity(model, held_out):.1f}")

# %% [markdown]
# What to make of the real figure: GPT-2 never trained on Tiny Shakespeare and its web text
# holds little early-modern verse set out as a play, so expect a higher perplexity than on
# modern prose (the GPT-2 paper reports 29.4 for gpt2 on WikiText-2, and 18.3 for gpt2-xl).
# The course does not quote a value for this text: compute it. Part 8 reports the same
# measure, the exponential of the validation loss, before and after fine-tuning on
# Shakespeare (full and LoRA); with its `BASE = "gpt2"` it is per GPT-2 token, as here,
# though over shorter windows (256 tokens), so not exactly the same number.
#
# ## Tasks without training
# The GPT-2 paper's title is *Language Models are Unsupervised Multitask Learners*: with no
# fine-tuning at all, a task can be posed as text whose natural continuation is the answer.
# - **Summarisation**: an article followed by `TL;DR:`, a habit of Reddit writers.
# - **Question answering**: `Q: ... A:` pairs, ending with an open `A:`.
# - **Translation**: a few `English = French` pairs, then an English sentence and ` =`.
#
# Greedy decoding for these, since we want the single likeliest answer.

# %%
TASKS = {
    "summary": (
        "The city council voted on Tuesday to close the old library on Main Street and move its "
        "books to a new building near the station. The new library will open in March, have "
        "twice the space and stay open until 10 pm. Some residents protested, saying the old "
        "building is part of the town's history.\nTL;DR:"
    ),
    "question": (
        "Q: What is the capital of Italy?\nA: Rome\n"
        "Q: Who wrote Romeo and Juliet?\nA: William Shakespeare\n"
        "Q: What is the largest planet in the solar system?\nA:"
    ),
    "translation": (
        "sea otter = loutre de mer\ncheese = fromage\nthe red car = la voiture rouge\n"
        "good morning ="
    ),
}


def complete(model: torch.nn.Module, prompt: str, n: int = TASK_TOKENS) -> str:
    """The greedy continuation of ``prompt``, up to the first blank line."""
    x = torch.tensor([enc.encode(prompt)], device=next(model.parameters()).device)
    new = generate(model, x, n, temperature=0)[0, x.size(1) :].tolist()
    return enc.decode(new).split("\n\n")[0].split("\nQ:")[0]


# %%
# NBVAL_IGNORE_OUTPUT
print(note)
for task, p in TASKS.items():
    print(f"{task:>12}: {complete(model, p)!r}")

# %% [markdown]
# With the real models expect: the **summary** picks up words from the article but is often
# loose or wrong in detail (in the paper, GPT-2's TL;DR summaries scored barely above three
# random sentences of the article); the **answer** is right for very common facts and
# otherwise confidently wrong (the largest GPT-2 answered 4.1% of Natural Questions
# correctly); the **translation** works for short common phrases, from 1.5B parameters
# especially (the paper: 5 BLEU English→French, 11.5 French→English; the best systems of
# the time reached about 40 on English→French). These were surprising in 2019 because nobody trained for them.
#
# ## Honest limits
# - **Repetition**: greedy decoding loops (see the trigram share above); sampling hides it,
#   at the cost of drifting and contradicting itself.
# - **Made-up facts**: the model continues text plausibly, not truthfully. Ask it about a
#   person or a paper and it will invent dates, titles and quotes with the same fluency.
# - **The 1,024-token window**: the model cannot see further back. The package's `GPT`
#   refuses longer inputs outright (yours fails in `wpe`, which has no vector for position
#   1,025), and `generate` slides the window, forgetting the start:

# %%
too_long = torch.zeros(1, config.context_length + 1, dtype=torch.long, device=device)
try:
    reference(too_long)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## Faster, and from the terminal
# On a GPU, two things make generation several times faster: half precision (bf16 on recent
# GPUs, fp16 on a T4: half the bytes to read per token) and a decoder that launches the
# whole step at once. `gpt2course.fastgen.FastGenerator` preallocates the KV cache at its
# final length, so every step has the same shapes and memory addresses, and replays each
# step as one CUDA graph. Its output is the same tokens as `generate`; on a CPU it runs
# eagerly.

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course.fastgen import FastGenerator

fast = FastGenerator(reference)
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
out = fast.generate(idx, NEW_TOKENS, temperature=0.8, top_k=40, generator=g)
print(f"{note}{NEW_TOKENS / (time.perf_counter() - t0):.0f} tokens/s on {device.type}")
print(enc.decode(out[0].tolist()))

# %% [markdown]
# The same from a terminal, streamed as it is generated:
#
# ```
# python -m gpt2course generate "The meaning of life is" --model gpt2 --max-new-tokens 100 --temperature 0.8 --top-k 40
# ```
#
# `--model` also takes `gpt2-medium`, `gpt2-large`, `gpt2-xl`, or a folder. No internet in
# your room? `python -m gpt2course assets bundle DIR --models gpt2` on a machine that has it,
# then `python -m gpt2course assets seed --from DIR` on each machine, with `HF_HUB_OFFLINE=1`.
#
# Next, part 8: fine-tuning this model on your own text.
