# %% [markdown]
# ## GPT-2 and the models behind ChatGPT
# **What they share.** ChatGPT's models are GPT-2's direct descendants, and the pieces you
# built are theirs: a decoder-only Transformer (token and position information, blocks of
# causal self-attention and MLPs on a residual stream, a head that scores every next token),
# pretrained on one task, predicting the next token of a large collection of internet text,
# then fine-tuned. Everything from parts 1 to 8 carries over.
#
# **What separates them**, each with a number and where the course measures it:
#
# | | GPT-2 | the models behind ChatGPT | measured in |
# | --- | --- | --- | --- |
# | size | 124M to 1.5B parameters | GPT-3: 175B; GPT-4: undisclosed | part 4 (counting), section 4 below |
# | training after pretraining | none | a chat format, instruction tuning, then RLHF on human rankings | sections 1 and 2 below; RLHF in notebook 10 |
# | context | 1,024 tokens | GPT-3: 2,048; GPT-4 at launch: 8,192 and 32,768 | section 3 below |
# | access | open weights: download, read, change | a chat app and a paid API; weights not published | part 7 loads them |
# | tuning | yours to fine-tune | already tuned for conversation | part 8 (LoRA), sections 2 and 5 |
# | era | 2019 | GPT-3 2020; ChatGPT Nov 2022 (GPT-3.5 series); GPT-4 Mar 2023 | the timeline below |
#
# *Machine time: the cells take about 3 minutes on a quiet 2-core CPU (measured 2026-12-06).*
#
# ## A short history, and why
# On 14 February 2019 OpenAI announced GPT-2 in a post titled *Better Language Models and
# Their Implications*, and did something unusual: it released only the smallest model and
# held back the 1.5B one, over concerns that it could be used to write misleading news,
# impersonate people or automate spam at scale. It called the decision an experiment in
# publication norms. The sizes then came out in stages: 355M in May, 774M in August (with a
# report on release strategies and partnerships to study misuse), and the full 1.5B on
# 5 November 2019 (*GPT-2: 1.5B release*), whose findings included that people find GPT-2's
# text convincing, that detecting it is hard, and that OpenAI had seen "no strong evidence of
# misuse so far". The staging was a safety measure and also research: nine months in which
# OpenAI and outside groups studied misuse, bias and detection (OpenAI released a detector
# of GPT-2 text with the full model) before the largest model was public.
#
# The models that followed stayed closed. GPT-3 (Brown et al. 2020) was offered only
# through a commercial API, which let OpenAI watch and limit its use, license it (Microsoft
# received an exclusive licence to the model itself in September 2020) and fund the next
# models. InstructGPT
# (the API's default models from 27 January 2022; the paper, Ouyang et al., followed in
# March), ChatGPT (30 November 2022) and GPT-4 (2023) were served the same
# way; the GPT-4 report withheld even the model's size and training data, citing "the
# competitive landscape and the safety implications of large-scale models". Safety, the
# business of selling access, and a race in which details are an advantage all point the same
# way.
#
# So GPT-2 is still the model people learn on: its weights, tokenizer and code are public
# and can be fine-tuned; the 124M model runs on a laptop; and it is small enough to
# understand completely, as you now do. Rebuilds such as nanoGPT, llm.c and this course
# check every number against the real thing.

# %%
import matplotlib.pyplot as plt

from gpt2course.figures import TIMELINE, timeline_figure

timeline_figure()
plt.show()
for m in TIMELINE:
    print(f"{m.name:12} {m.source}")

# %% [markdown]
# **Sources.** Radford et al. 2018, *Improving Language Understanding by Generative
# Pre-Training*; Radford et al. 2019, *Language Models are Unsupervised Multitask Learners*;
# OpenAI, *Better Language Models and Their Implications* (14 Feb 2019), *GPT-2: 6-Month
# Follow-Up* (20 Aug 2019) and *GPT-2: 1.5B Release* (5 Nov 2019); Brown et al. 2020,
# *Language Models are Few-Shot Learners*; Ouyang et al. 2022, *Training Language Models to
# Follow Instructions with Human Feedback*; OpenAI, *Introducing ChatGPT* (30 Nov 2022);
# OpenAI 2023, *GPT-4 Technical Report*, and the GPT-4 launch post (14 Mar 2023) for its
# 8,192 and 32,768-token contexts.
#
# This notebook turns a model that continues text into one you can chat with, in miniature:
# 1. **a chat format**: roles written with special tokens the base vocabulary does not have,
#    and a mask saying which tokens the model learns (you write `render_conversation`);
# 2. **instruction tuning on conversations** of several turns, where later turns depend on
#    earlier ones, measured per turn on held-out conversations, before and after;
# 3. **context length**: what GPT-2's 1,024 positions mean for a conversation that grows;
# 4. **scale**: parameters, memory and speed of the four GPT-2 sizes, and beyond;
# 5. **a chat with your model**, and with the untuned base beside it.
#
# Notebook 10 then does what ChatGPT did next, RLHF: a reward model, reinforcement learning
# with a KL penalty, and DPO beside it.

# %% [markdown] instructor
# ⏱ About 30 minutes a learner (the guide's estimate: 16 reading, 12 for the exercises).
# The story first (5 minutes, no code). Start the first code cells
# before the story if the room is slow: the base model pretrains there. Point at the
# coloured tokens after the exercise: green is all the model learns, the one idea that
# separates instruction tuning from pretraining.

# %%
import copy
import os
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, display
from torch.utils.data import DataLoader

from gpt2course import chat, checks, instruct
from gpt2course.device import pick_device, quick_mode
from gpt2course.experiments import chat_base
from gpt2course.model import count_parameters
from gpt2course.train import TrainConfig, train
from gpt2course.widgets.chat import chat_widget
from gpt2course.widgets.tokens import render_trained

device = pick_device()
QUICK = quick_mode()
# Sizes: quick (the automatic tests) and, beside it, the full setting (~6 min on a 2-core CPU).
N_LAYER, N_EMBD = (2, 64) if QUICK else (2, 128)
PRETRAIN_STEPS = 60 if QUICK else 200  # of the byte-level base, on Tiny Shakespeare
N_TRAIN, N_HELD_OUT = (2000, 40) if QUICK else (4000, 150)  # conversations
SFT_STEPS, BATCH_SIZE, LR = (300, 16, 3e-3) if QUICK else (1000, 16, 2e-3)
# Quick mode has time for the two tasks learned first; the full setting uses all six.
TASKS = ["count", "last"] if QUICK else None
# GPT-2 where its weights are at hand: $GPT2COURSE_MODEL (a name, folder or file), or
# OpenAI's "gpt2" on a GPU (Colab). Otherwise the byte-level base, pretrained below.
GPT2 = os.environ.get("GPT2COURSE_MODEL") or ("gpt2" if device.type == "cuda" else None)
print("device:", device)

# %% [markdown]
# ## 1. A chat format
# A base model continues text. ChatGPT's models read and write *conversations*: messages,
# each from a **role**: `system` (instructions from whoever deploys the model), `user` (you),
# `assistant` (the model). The format writes each message as its role's token, its text,
# and an end token:
#
# `<|system|>You are terse.<|end|><|user|>Add 2 and 3.<|end|><|assistant|>5<|end|>`
#
# The four chat tokens are **special**: they get ids *after* the base vocabulary, so no
# text can produce them. A user who types `<|end|>` gets the ordinary tokens of those seven
# characters, never the control token; otherwise anyone could end the user's turn and
# write the assistant's. (OpenAI's ChatML format, GPT-2's `<|endoftext|>` and nanochat's
# `<|user_start|>` work the same way.)
#
# First the base model. With GPT-2's weights at hand it is GPT-2 with GPT-2's tokenizer;
# otherwise a small GPT that reads bytes (as in part 6), pretrained for `PRETRAIN_STEPS`
# steps on Tiny Shakespeare, so it already writes English-looking text and knows nothing of
# chats. Every output below says which.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
start = time.perf_counter()
base, tok, WHAT = chat_base(N_LAYER, N_EMBD, PRETRAIN_STEPS, device=device, gpt2=GPT2)
base.to(device)
print(f"the base model: {WHAT} ({time.perf_counter() - start:.0f} s)")

# %%
print(f"the base model: {WHAT}")
print(f"base vocabulary: {tok.base_vocab_size} tokens; the chat tokens come after it:")
for t in chat.CHAT_TOKENS:
    print(f"  {t:15} id {tok.special[t]}")
print(
    f"typed as text, '<|end|>' is {len(tok.encode('<|end|>'))} ordinary tokens:",
    tok.encode("<|end|>"),
)

# %% [markdown]
# **The vocabulary grows; nothing else changes.** The model has one embedding row per
# token, and the same matrix scores every next token (the head is tied to the embedding,
# part 5). Four new tokens need four new rows; every other weight stays as it is.
#
# How to fill the new rows? Random rows of the usual size would give the new tokens logits
# unlike any other token's. `chat.grow_vocab` sets each to the **mean** of the old rows:
# its logit is then exactly the average of the old tokens' logits (a dot product with a
# mean is the mean of the dot products), so the new tokens start neither favoured nor
# impossible, and tuning moves them from there.

# %%
# NBVAL_IGNORE_OUTPUT
model = copy.deepcopy(base)
old = {k: v.detach().clone() for k, v in model.state_dict().items()}
chat.grow_vocab(model, tok.vocab_size)
print(f"wte: {tuple(old['wte.weight'].shape)} -> {tuple(model.wte.weight.shape)}, head tied:",
      model.lm_head.weight is model.wte.weight)  # fmt: skip
# The grown table's first rows are the old ones; every other weight is untouched.
same = all(torch.equal(v[: len(old[k])], old[k]) for k, v in model.state_dict().items())
print("every old weight unchanged:", same)
with torch.no_grad():
    h = model.ln_f(model.wte.weight[:3])  # three hidden states, (3, C)
    logits = model.lm_head(h)  # (3, V + 4)
    old_mean = logits[:, : tok.base_vocab_size].mean(-1)
print("a new token's logit vs the mean of the old logits:")
print(
    " ",
    [round(v, 4) for v in logits[:, tok.end_token].tolist()],
    [round(v, 4) for v in old_mean.tolist()],
)
untuned = copy.deepcopy(model).eval()  # kept, to chat with before and after

# %% [markdown]
# **The mask.** A conversation is rendered as one sequence of ids, and tuning trains on it
# with the usual next-token loss, but only where the *assistant* speaks. `mask[i]` is 1
# exactly when `ids[i]` belongs to an assistant reply: its text and the `<|end|>` that ends
# it (the model must learn to stop). The role tokens are 0: the format puts
# `<|assistant|>` there, the model writes only what follows. The system and user messages
# are 0: the model reads them, it is not taught to write them.
#
# ### Exercise: render a conversation
# Write `render_conversation(messages, tokenizer)`: `messages` is a list of
# `{"role": ..., "content": ...}` dicts. Return `(ids, mask)`, two lists of equal length:
# for each message its role's token (`tokenizer.role_token(role)`), its content
# (`tokenizer.encode(content)`) and `tokenizer.end_token`; and the mask as above.


# %%
def render_conversation(messages, tokenizer):
    """A conversation -> (ids, mask): mask[i] is 1 where ids[i] is the assistant's to learn."""
    # BEGIN SOLUTION
    # HINT: chat tokens come from tokenizer.role_token(role) and tokenizer.end_token, never from encode().
    ids, mask = [], []
    for m in messages:
        body = tokenizer.encode(m["content"]) + [tokenizer.end_token]
        learned = 1 if m["role"] == "assistant" else 0
        ids += [tokenizer.role_token(m["role"])] + body
        mask += [0] + [learned] * len(body)
    return ids, mask
    # END SOLUTION


# %%
render_conversation = checks.check_render_conversation(render_conversation)

# %% [markdown]
# The token viewer of part 1, on a rendered conversation: the tokens the loss learns are
# green, the rest grey (hover over one for its id).

# %%
example = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Add 2 and 3."},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Now add 4 to it."},
    {"role": "assistant", "content": "9"},
]
ids, mask = render_conversation(example, tok)
display(HTML(render_trained(tok, ids, mask)))
x, y = chat.collate([(ids, mask)])
print(f"collate: x {tuple(x.shape)}, labels y with -100 (skipped by the loss) but at "
      f"{(y != -100).sum().item()} positions: the next token wherever it is the assistant's")  # fmt: skip

# %% [markdown]
# ## 2. Instruction tuning on conversations
# Public instruction sets (FLAN, Alpaca, Dolly, and the conversations people wrote for
# InstructGPT and ChatGPT) have free-form answers: models tuned on them are scored on tasks
# held out from training, or by people comparing answers. Ours is generated by the package
# (`gpt2course.instruct`), with answers that can be checked exactly, so that "follows
# instructions better" becomes a number. A conversation opens with one of six tasks
# (arithmetic, reversing words, capitals, a bracket format, counting words, the last word)
# and may go on for up to two more turns that only make sense with the earlier ones in view:
# "Now add 5 to it.", "And reverse that.", "Now in capitals.", "Put that in brackets.".
# The held-out conversations open with instructions that no training conversation has.

# %%
train_set, held_out = instruct.conversation_split(N_TRAIN, N_HELD_OUT, seed=0, tasks=TASKS)
for c in instruct.converse(instruct.make_tasks(6, seed=1), seed=4):  # one of each task
    print(" | ".join(f"{t.instruction} -> {t.response}" for t in c.turns))
turns = [len(c.turns) for c in held_out]
print(f"{len(train_set)} training conversations; {len(held_out)} held out, with "
      f"{sum(turns)} assistant turns ({turns.count(1)} one-turn, {turns.count(2)} two, "
      f"{turns.count(3)} three)")  # fmt: skip

# %% [markdown]
# We measure each turn with the right earlier answers in the context, so turn 2's score says
# whether the model uses what came before, not whether it got turn 1 right. Before tuning:

# %%
# NBVAL_IGNORE_OUTPUT
before = instruct.evaluate(model, held_out, tok)
print(f"{WHAT}, untuned: {100 * before['all']:.1f}% exact match on held-out turns")
print("its reply to", repr(held_out[0].turns[0].instruction), "->",
      repr(chat.reply(model, tok, held_out[0].messages(1)[:1], max_new_tokens=20)))  # fmt: skip

# %% [markdown]
# Now the tuning: part 6's `train` loop, fed batches of rendered conversations through
# `chat.collate` (a `DataLoader` with `collate_fn`). Nothing else changes.

# %%
# NBVAL_IGNORE_OUTPUT
rendered = [render_conversation(c.messages(), tok) for c in train_set]
torch.manual_seed(0)
loader = DataLoader(rendered, batch_size=BATCH_SIZE, shuffle=True, collate_fn=chat.collate)
config = TrainConfig(
    max_steps=SFT_STEPS,
    learning_rate=LR if not GPT2 else 1e-4,  # GPT-2's weights want gentler steps
    min_lr=(LR if not GPT2 else 1e-4) / 10,
    warmup_steps=30,
    weight_decay=0.0,
    device=str(device),
)
start = time.perf_counter()
history = train(model, loader, None, config)
model.eval()
print(
    f"{SFT_STEPS} steps in {time.perf_counter() - start:.0f} s, last loss {history.train_loss[-1]:.3f}"
)

# %% record:tuned_chat
# NBVAL_IGNORE_OUTPUT
after = instruct.evaluate(model, held_out, tok)
print(
    f"{WHAT}: exact match on held-out turns {100 * before['all']:.1f}% -> {100 * after['all']:.1f}%"
)
keys = [k for k in after if k.startswith("turn")]
print("per turn:", ", ".join(f"{k} {100 * before[k]:.0f}% -> {100 * after[k]:.0f}%" for k in keys))
tasks = sorted(k for k in after if k != "all" and not k.startswith("turn"))
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), width_ratios=[1, 3])
for ax, names in zip(axes, [keys, tasks], strict=True):
    xs = torch.arange(len(names))
    ax.bar(xs - 0.2, [before[k] for k in names], 0.4, label="base")
    ax.bar(xs + 0.2, [after[k] for k in names], 0.4, label="tuned")
    ax.set_xticks(xs.tolist(), names, rotation=30, ha="right"), ax.set_ylim(0, 1)
axes[0].set_ylabel("exact match"), axes[1].legend()
fig.suptitle(f"held-out conversations, per turn and per task ({WHAT})", fontsize=9)
plt.show()
for c in held_out[:4]:
    for k, t in enumerate(c.turns):
        got = chat.reply(
            model, tok, c.messages(k) + [{"role": "user", "content": t.instruction}], 20
        )
        print(f"{'✓' if got == t.response else '✗'} turn {k + 1}: {t.instruction!r:38} -> {got!r}")

# %% [markdown]
# What the full setting measured (recorded, shown after the cell above; 150 held-out
# conversations, 295 turns, one seed; 5.5 minutes for the whole notebook on a shared 2-core
# CPU): exact match **0% -> 23.7%**, by turn **31%, 18% and 9%**. Quick mode's smaller
# model learns two tasks a little; read its numbers as a smoke test. Later turns are harder
# for two reasons you can see in the answers: a follow-up must find the earlier answer in the
# context and work on it (copying from far back is what small models learn last), and
# "Now add 5 to it." is arithmetic on a number the model has to read first. Tuning longer
# helps most (with single-turn tasks, 2,000 steps of batch 32 reached 73%:
# `docs/benchmarks.md`, `## finetuning`).
#
# The untuned base scores 0% however long it pretrained: Shakespeare never shows it a chat
# token, let alone a conversation, and it answers with Shakespeare-like fragments. What
# pretraining gives is the bytes and words of English; the format and the skills come from
# the tuning.
#
# This step, at vastly larger scale, is what turned GPT-3 into InstructGPT (about 13,000
# prompts with demonstrations written by people for its first step), and a model of the
# GPT-3.5 series into ChatGPT, with conversations written by people.

# %% [markdown]
# **Is my result normal?** The card puts your exact match beside the band of recorded runs
# of this notebook's default settings on the byte-level base (one per seed), and when it
# falls outside, names the likely causes.

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course.recorded import report_card

if tok.name == "bytes+chat":
    report_card("09_from_gpt2_to_chatgpt", {"held-out exact match": after["all"]})
else:
    print(f"The recorded band is the byte-level base's; yours is {WHAT}: no band to compare with.")

# %% [markdown]
# ## 3. Context length
# GPT-2 has a table of 1,024 learned position vectors (`wpe`): position 1,025 has no vector,
# so the model cannot even be run on a longer text. A conversation only grows, and ours
# reads `context_length` tokens; the chat refuses one that no longer fits:

# %%
long_chat = []
for c in train_set:  # conversations' turns, one after the other, until they outgrow the context
    long_chat += c.messages()
    if len(render_conversation(long_chat, tok)[0]) > model.config.context_length:
        break
try:
    chat.reply(model, tok, long_chat + [{"role": "user", "content": "Add 1 and 2."}])
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# Chat front ends then drop the earliest turns, and the model forgets them: a follow-up whose
# first turn was dropped ("Now add 5 to it." with no number in view) has nothing to work on.
#
# Two costs grow with the context: the KV cache (linear) and attention's score matrix
# (quadratic: every position attends to every earlier one). For GPT-2 small, one layer's
# scores in fp16:

# %%
for T in [1_024, 4_096, 32_768, 131_072]:
    scores = 12 * T * T * 2  # heads x T x T x 2 bytes
    kv = 12 * 2 * T * 768 * 2  # layers x (k, v) x T x C x 2 bytes
    print(f"T = {T:>7,}: scores {scores / 1e9:8.2f} GB per layer, KV cache {kv / 1e9:6.2f} GB")

# %% [markdown]
# So longer contexts needed more than a bigger table: attention kernels that never store
# the score matrix (FlashAttention), and position encodings with no table to run out of:
# relative schemes such as rotary embeddings (RoPE) and ALiBi. Neither makes a longer context
# free: ALiBi was designed to degrade gracefully a little past the training length, and a
# RoPE model taken further than it trained on still falls apart unless its positions are
# rescaled and it is trained some more on long texts. GPT-3 had 2,048 positions, GPT-4
# launched with 8,192 and 32,768, and later models take 128k and more, trained for it.

# %% [markdown]
# ## 4. Model size
# The four GPT-2 sizes, counted on PyTorch's `meta` device (shapes only, no memory), with the
# memory of their weights and an upper bound on decoding speed: at batch 1 every weight is
# read once per token, so tokens/s is at most memory bandwidth / weight bytes.

# %%
T4_BANDWIDTH, H100_BANDWIDTH = 320e9, 3.35e12  # bytes/s
print(
    f"{'model':12} {'params':>8} {'fp32 GB':>8} {'fp16 GB':>8} {'tok/s T4':>9} {'tok/s H100':>10}"
)
sizes = {}
for name in ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]:
    n = count_parameters(name)
    sizes[name] = n
    print(
        f"{name:12} {n / 1e6:7.0f}M {4 * n / 1e9:8.2f} {2 * n / 1e9:8.2f} "
        f"{T4_BANDWIDTH / (2 * n):9.0f} {H100_BANDWIDTH / (2 * n):10.0f}"
    )
print(f"{'GPT-3':12} {175_000:7.0f}M {4 * 175e9 / 1e9:8.0f} {2 * 175e9 / 1e9:8.0f}")

# %% [markdown]
# The measured speeds of our decoder are in `docs/benchmarks.md` (part 7's `bench generate`).
# What size buys, the GPT-2 paper showed: on nearly every task it measured the larger model
# did better, and even the 1.5B model still underfit its training text. GPT-3 pushed the
# same recipe 100× further.

# %% [markdown]
# ## 5. Talk to it
# `chat.reply(model, tokenizer, messages)` renders the conversation so far, adds
# `<|assistant|>`, and lets the model write until its `<|end|>`. A conversation of three
# turns, each depending on the one before:

# %%
# NBVAL_IGNORE_OUTPUT
print(f"the model: {WHAT}, tuned on conversations")
messages = []
for text in ["Last word: moon river lamp", "Put that in brackets.", "Now in capitals."]:
    messages.append({"role": "user", "content": text})
    messages.append({"role": "assistant", "content": chat.reply(model, tok, messages, 24)})
    print(f"user: {text!r:32} assistant: {messages[-1]['content']!r}")

# %% [markdown]
# The chat widget: type a message and press Enter. It goes to both models, the untuned base
# (with its grown vocabulary) and the tuned one, and each answers in its own conversation,
# side by side. "New chat" starts again. Try a follow-up, a task it never saw, or a message
# holding `<|end|>`: the widget refuses it, with one line saying why. Notebook 10 adds the
# RLHF and DPO models to this row.

# %%
# NBVAL_IGNORE_OUTPUT
w = chat_widget(
    {"base, untuned": untuned, "tuned": model}, tok, max_new_tokens=24, note=f"the base: {WHAT}"
)
w.chat.send("Add 12 and 30.")
w.chat.send("Now add 5 to it.")
w

# %% [markdown]
# ## What comes next
# You have built GPT-2 from bytes to text: the tokenizer, attention, the transformer, the
# training loop, loading OpenAI's weights, adapting them with LoRA, and now the chat format
# and instruction tuning that turn a text continuer into something you can talk to.
# ChatGPT then learned from *preferences*: people ranked answers, a reward model learned
# their ranking, and reinforcement learning optimised the model against it, with a penalty
# for drifting from the tuned model. Notebook 10 builds that in miniature, on the model of
# this notebook's kind, and puts DPO beside it.
