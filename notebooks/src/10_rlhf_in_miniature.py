# %% [markdown]
# ## From a tuned model to an assistant people prefer
# Part 9 taught a model the chat format and tuned it on demonstrations. The step that made
# ChatGPT was the next one, **RLHF** (reinforcement learning from human feedback), as
# described for InstructGPT (Ouyang et al. 2022):
#
# 1. people **rank** several answers of the tuned model to the same prompt;
# 2. a **reward model**, the tuned GPT with a one-number head, learns to score answers so
#    that it ranks them as people did;
# 3. the tuned model (the **policy**) is optimised by reinforcement learning to write answers
#    the reward model scores high, with a **KL penalty** that keeps it close to the tuned
#    model.
#
# **DPO** (Rafailov et al. 2023) goes from the same rankings straight to a tuned policy, with
# no reward model and no sampling. This notebook runs all of it, in miniature, on one small
# model, and measures each step: the figure says where.
#
# *Machine time: about 5 minutes on a quiet 2-core CPU (measured 2026-12-07); the training
# runs are most of it.*

# %%
import matplotlib.pyplot as plt

from gpt2course.figures import rlhf_pipeline_figure

rlhf_pipeline_figure()
plt.show()

# %% [markdown]
# The people are replaced by a **rule that plays the rater** (the reward model never sees
# it, only its rankings), so that "better" is a number you can trust: the rater's **true
# score**, a fraction of its maximum, averaged over replies sampled for held-out prompts. The
# reward model's own score is another number, and the point of section 4 is that the two
# can part ways.

# %% [markdown] instructor
# ⏱ About 45 minutes. Start the parameter cell and section 1 (pretraining and tuning, ~1 min
# quick, a few minutes full) before the story. The moment to stop and ask the room is the
# Goodhart plot of section 4: "the reward went up; did the model get better?"

# %%
import copy
import time

import torch
import torch.nn.functional as F

from gpt2course import chat, checks, instruct, rlhf
from gpt2course.device import pick_device, quick_mode
from gpt2course.experiments import shakespeare_base
from gpt2course.widgets.chat import chat_widget

device = pick_device()
QUICK = quick_mode()
# Sizes: quick (the automatic tests, ~3 min) and, beside it, the full setting (~5 min on a
# quiet 2-core CPU; `python -m gpt2course bench rlhf` runs the same miniature).
N_EMBD, PRETRAIN_STEPS = (64, 60) if QUICK else (96, 200)
TASKS = ["count", "last"]  # two of part 9's tasks: counting words, and the last word
N_TRAIN, N_HELD_OUT = (1000, 48) if QUICK else (2000, 96)
SFT_STEPS = 300 if QUICK else 600
# The rater ranks eight replies to every training prompt: ~35,000 pairs at full size. With
# fewer (600 prompts, ~10,000 pairs) the reward model over-fits and stops near 0.84 held-out
# accuracy (`docs/benchmarks.md`, `## rlhf`).
RM_REPLIES, RM_STEPS = (8, 150) if QUICK else (8, 800)
RL_STEPS, KL_COEF = (30, 1.0) if QUICK else (60, 1.0)
DPO_STEPS = 30 if QUICK else 60
GROUP_SIZE, MAX_NEW_TOKENS = 8, 16  # replies sampled per prompt; the longest reply
print("device:", device)

# %% [markdown]
# ## 1. The starting point: a pretrained base, tuned on chats
# As in part 9: a byte-level GPT pretrained on Tiny Shakespeare, its vocabulary grown by the
# four chat tokens, then instruction-tuned on single-turn chats of two of part 9's tasks.
# The demonstrations end their answer with a friendly "!" half of the time, as people's
# demonstrations vary; that will matter to the rater.

# %%
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
tok = chat.chat_tokenizer("bytes")
base = shakespeare_base(2, N_EMBD, steps=PRETRAIN_STEPS, context_length=80, device=device)
chat.grow_vocab(base, tok.vocab_size)
train_set, held_out = instruct.task_split(N_TRAIN, N_HELD_OUT, seed=0, tasks=TASKS)
sft = copy.deepcopy(base)
rlhf.instruction_tune(sft, train_set, tok, SFT_STEPS, learning_rate=3e-3, device=device)
sft.eval().requires_grad_(False)  # from now on the tuned model is the frozen reference
print(f"pretrained and tuned in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 2. The rater, and a reward model that learns its rankings
# The rule: 0.75 for the right answer, 0.25 for ending it with one "!"; two or more "!" is
# shouting, and a reply that never ends is rambling, both worth nothing.

# %%
for reply in ["3", "3!", "4!", "3!!", "3!!!!!!"]:
    print(f"{reply!r:11} -> {rlhf.rater_score(reply, '3')}")

# %% [markdown]
# As for InstructGPT, the rater ranks the tuned model's *own* samples: `RM_REPLIES` replies
# to each training prompt, and every two replies to one prompt that it scores
# differently make a pair (chosen, rejected). The same, with eight replies each, for the
# held-out prompts, to measure the reward model on prompts it never saw.

# %%
# NBVAL_IGNORE_OUTPUT
# (sampled from a model trained here: other CPUs round differently, so other replies)
g = torch.Generator(device=device).manual_seed(0)
samples = rlhf.sample_replies(sft, tok, train_set, RM_REPLIES, MAX_NEW_TOKENS, generator=g)
held_samples = rlhf.sample_replies(sft, tok, held_out, 8, MAX_NEW_TOKENS, generator=g)
pairs, held_pairs = rlhf.ranked_pairs(samples), rlhf.ranked_pairs(held_samples)
print(f"{len(pairs)} training pairs, {len(held_pairs)} held-out pairs; for example:")
for c, r in pairs[:4]:
    print(f"  chosen {samples.replies[c]!r:12} over {samples.replies[r]!r:12}"
          f" (answer {samples.answers[c]!r})")  # fmt: skip

# %% [markdown]
# The reward model is a copy of the tuned GPT whose head writes one number instead of a
# score per token (`rlhf.reward_model`); a reply's reward is that number at its last token,
# which has read the prompt and the whole reply. It learns from pairs only, through the
# **Bradley-Terry** model: the chance that the chosen reply wins is
# $\sigma(r_{\text{chosen}} - r_{\text{rejected}})$, and the loss is its negative log:
#
# $$\mathcal{L} = -\log \sigma(r_{\text{chosen}} - r_{\text{rejected}})$$
#
# Only differences of rewards count, so the scale and zero of the reward are arbitrary.
#
# ### Exercise: the Bradley-Terry loss
# `r_chosen` and `r_rejected` are the rewards of each pair's two replies, shape (B,). Return
# the loss averaged over the pairs, a tensor that can `backward()`.


# %%
def bradley_terry_loss(r_chosen, r_rejected):
    """-log sigmoid(r_chosen - r_rejected), averaged over the pairs."""
    # BEGIN SOLUTION
    # HINT: F.logsigmoid(z) is log(sigmoid(z)), without overflow for large |z|.
    return -F.logsigmoid(r_chosen - r_rejected).mean()
    # END SOLUTION


# %%
bradley_terry_loss = checks.check_bradley_terry_loss(bradley_terry_loss)

# %%
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
rm = rlhf.reward_model(sft).requires_grad_(True)
losses = rlhf.train_reward_model(rm, samples, pairs, RM_STEPS, loss_fn=bradley_terry_loss)
rm.requires_grad_(False)
rm_accuracy = rlhf.pairwise_accuracy(rm, held_samples, held_pairs)
print(f"{RM_STEPS} steps in {time.perf_counter() - start:.0f} s, last loss {losses[-1]:.3f}")
print(f"held-out pairwise accuracy: {rm_accuracy:.3f}")

# %% [markdown]
# How the reward model scores some replies it could meet, to a prompt it never trained on
# (the rater's score beside it). The tuned model rarely shouts, so the reward model saw few
# shouting replies; look at where it puts them against a plain right answer.

# %%
# NBVAL_IGNORE_OUTPUT
example = held_out[0]
answer = example.response
probes = [answer, answer + "!", "x!", answer + "!!", answer + "!!!!!!", "!!!!!!!!"]
ids = [rlhf.chat_example(instruct.Example(example.instruction, p, ""), tok)[0] for p in probes]
x = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long, device=device)
for i, row in enumerate(ids):
    x[i, : len(row)] = torch.tensor(row)
with torch.no_grad():
    scores = rlhf.sequence_rewards(rm, x, torch.tensor([len(r) for r in ids], device=device))
print(repr(example.instruction))
for p, s in zip(probes, scores.tolist(), strict=True):
    print(f"  {p!r:16} reward model {s:6.2f}   rater {rlhf.rater_score(p, answer):.2f}")

# %% [markdown]
# ## 3. Reinforcement learning against the reward model, with a KL penalty
# Each step samples `GROUP_SIZE` replies to each of 8 training prompts from the policy,
# scores them with the reward model, and nudges the policy towards the replies that scored
# above their group's average. InstructGPT used **PPO** with a value network (a fourth model
# in memory) to judge "above average"; we use the group instead, as GRPO does (Shao et al.
# 2024, and nanochat's RL step): the **advantage** of reply $i$ of a group is
#
# $$A_i = \frac{r_i - \operatorname{mean}(r)}{\operatorname{std}(r)},$$
#
# which needs no value network, only several samples per prompt. And we take one gradient
# step per batch of samples, so PPO's clipped ratio would always be 1: the policy gradient
# is simply $-A_i \log\pi(\text{token})$ for each token of the reply.
#
# The **KL penalty** keeps the policy near the tuned model $\pi_{\text{ref}}$, and we put it
# where InstructGPT did: in the reward. A reply's reward loses $\beta$ times its log-ratio,
# summed over its tokens,
#
# $$r_i \;\leftarrow\; r_i - \beta \sum_{t \in \text{reply}} \big(\log\pi(t) - \log\pi_{\text{ref}}(t)\big),$$
#
# a one-sample estimate of the reply's KL to the tuned model: a reply the tuned model would
# rarely write scores lower, so the policy moves away from it as from any low-scoring reply.
# The penalty is data, like the reward model's score (detached). The advantages are then
# made from these rewards as above.
#
# Why not add an estimate of the KL to the loss, as GRPO does? Its gradient is not the
# gradient of KL($\pi \,\|\, \pi_{\text{ref}}$): on the policy's own samples it pulls the
# policy to keep the tuned model's replies likely, but barely stops it from putting weight on
# replies the tuned model never writes. Run that way, this notebook's RL put "!" in the
# middle of words ("pio!" for "piano") and ended, over three seeds, no better than the tuned
# model on average (`docs/benchmarks.md`).
#
# ### Exercise: the policy-gradient loss
# `logprobs` and `ref_logprobs` (P, G, T) are the log-probabilities of each sampled token
# under the policy and the reference; `mask` (P, G, T) is 1 on the reply's tokens (not the
# prompt, not the padding); `rewards` (P, G) the reward model's scores. Subtract the penalty
# ($\beta$ = `kl_coef`) from the rewards, make the advantages, and return the mean over
# replies of (the mean over its reply tokens of $-A \log\pi$).


# %%
def policy_gradient_loss(logprobs, ref_logprobs, rewards, mask, kl_coef):
    """-advantage * log pi per reply token, the KL penalty inside the reward; one number."""
    # BEGIN SOLUTION
    # HINT: ((logprobs - ref_logprobs) * mask).sum(-1) is each reply's log-ratio, (P, G).
    m = mask.float()
    kl = ((logprobs - ref_logprobs).detach() * m).sum(-1)  # (P, G)
    r = rewards.detach() - kl_coef * kl
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + 1e-6)  # (P, G)
    per_token = -adv[..., None] * logprobs  # (P, G, T)
    return ((per_token * m).sum(-1) / m.sum(-1)).mean()
    # END SOLUTION


# %%
policy_gradient_loss = checks.check_policy_gradient_loss(policy_gradient_loss)

# %% [markdown]
# The run. Every few steps the policy is measured on the held-out prompts: the reward
# model's mean score, the rater's true score, and the KL to the tuned model in nats per
# reply token (the mean of $\log\pi - \log\pi_{\text{ref}}$ over sampled tokens).


# %%
def plot_runs(runs: dict) -> None:
    """Reward-model score, true score and KL over the steps of each run."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    for name, history in runs.items():
        steps = [h["step"] for h in history]
        for ax, key in zip(axes, ["reward", "true", "kl"], strict=True):
            ax.plot(steps, [h[key] for h in history], marker="o", label=name)
    titles = ["reward model's score", "rater's true score", "KL to the tuned model (nats/token)"]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9), ax.set_xlabel("RL step")
    axes[0].legend(fontsize=8)
    plt.tight_layout()
    plt.show()


def run_rl(kl_coef: float) -> tuple[torch.nn.Module, list[dict]]:
    """A copy of the tuned model, optimised against the reward model for RL_STEPS steps."""
    policy = copy.deepcopy(sft).requires_grad_(True)
    history = rlhf.rl_train(policy, sft, rm, tok, train_set, held_out, RL_STEPS, kl_coef,
                            max_new_tokens=MAX_NEW_TOKENS, loss_fn=policy_gradient_loss)  # fmt: skip
    return policy, history


# %% record:rl
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
rl_policy, rl_history = run_rl(KL_COEF)
rl_seconds = time.perf_counter() - start
print(f"{RL_STEPS} steps in {rl_seconds:.0f} s")
for h in rl_history:
    print(f"step {h['step']:3}: reward {h['reward']:6.2f}  true {h['true']:.3f}  KL {h['kl']:.3f}")
plot_runs({f"KL coefficient {KL_COEF}": rl_history})

# %% [markdown]
# ## 4. Goodhart's law, shown: the same run without the penalty
# "When a measure becomes a target, it ceases to be a good measure." The reward model is a
# measure of what the rater wants, learned from the tuned model's replies; the policy is free
# to find replies it never saw. Set the KL coefficient to 0 and run the same steps:

# %% record:goodhart
# NBVAL_IGNORE_OUTPUT
nokl_policy, nokl_history = run_rl(0.0)
plot_runs({f"KL coefficient {KL_COEF}": rl_history, "no KL penalty": nokl_history})
g = torch.Generator(device=device).manual_seed(1)
for name, model in [("tuned", sft), ("RL, KL", rl_policy), ("RL, no KL", nokl_policy)]:
    s = rlhf.sample_replies(model, tok, held_out[:2], 6, MAX_NEW_TOKENS, generator=g)
    print(f"{name:10}", s.replies)

# %% [markdown]
# Without the penalty the policy drifts wherever the reward model does not object. The
# reward model learned one thing well, that a reply should end with "!" (half the pairs
# differ in just that), but not the rater's "exactly one": it saw too few shouting replies
# to learn that they are worth nothing, and the probe of section 2 shows it scoring them
# high. Whether the answer in front of the "!" is right it learned only roughly: of two
# held-out replies that differ only in that, it prefers the right one about two times in
# three. So the policy keeps the "!", adds more, and lets the answers wander into
# strings the reward model cannot judge; its score climbs while the rater's falls. The KL
# penalty makes every step away from the tuned model cost something, so the policy takes
# only the changes that pay: it stays where the reward model was trained, and where its
# scores mean something.
#
# This is why InstructGPT kept the penalty: its PPO reward was the reward model's score minus
# $\beta \log(\pi/\pi_{\text{SFT}})$ per token, with $\beta = 0.02$, "to mitigate
# over-optimization of the reward model" (Ouyang et al. 2022, section 3.5), after Stiennon
# et al. (2020) had seen summaries optimised without it drift into text the reward model
# loved and people did not. Gao et al. (2023) measured the curve itself: the true reward
# rises, then falls, as the KL from the start grows.

# %% [markdown]
# ## 5. DPO on the same pairs
# DPO skips the reward model and the sampling. For each pair it raises the policy's
# log-probability of the chosen reply relative to the rejected one, each measured against
# the frozen tuned model:
#
# $$\mathcal{L} = -\log \sigma\Big(\beta\big[(\log\pi_\theta(y_w) - \log\pi_{\text{ref}}(y_w)) - (\log\pi_\theta(y_l) - \log\pi_{\text{ref}}(y_l))\big]\Big)$$
#
# Rafailov et al. show that its optimum is the optimum of RLHF's objective (reward minus
# $\beta$ KL) for the reward model implied by the pairs.
#
# ### Exercise: the DPO loss
# The four arguments are the summed log-probabilities of each pair's replies, shape (B,),
# under the policy and under the frozen reference. Return the loss (averaged over the pairs)
# and the margin, the bracket without beta, one per pair.


# %%
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.1):
    """DPO's loss (a scalar) and each pair's margin (B,)."""
    # BEGIN SOLUTION
    # HINT: F.logsigmoid(z) is log(sigmoid(z)), without overflow for large |z|.
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean(), margin.detach()
    # END SOLUTION


# %%
dpo_loss = checks.check_dpo_loss(dpo_loss)

# %% record:dpo
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
dpo_policy = copy.deepcopy(sft).requires_grad_(True)
rlhf.dpo_train(dpo_policy, sft, samples, pairs, DPO_STEPS, loss_fn=dpo_loss)
dpo_seconds = time.perf_counter() - start
measured = {
    "tuned (SFT)": rlhf.measure(sft, sft, rm, tok, held_out, max_new_tokens=MAX_NEW_TOKENS),
    f"RL, KL {KL_COEF}": rl_history[-1],
    "RL, no KL": nokl_history[-1],
    "DPO": rlhf.measure(dpo_policy, sft, rm, tok, held_out, max_new_tokens=MAX_NEW_TOKENS),
}
print(f"reward model held-out pairwise accuracy {rm_accuracy:.3f}")
print(f"{'model':12} {'true score':>10} {'reward':>8} {'KL':>7}")
for name, m in measured.items():
    print(f"{name:12} {m['true']:10.3f} {m['reward']:8.2f} {m['kl']:7.3f}")
print(f"cost: RL {rl_seconds:.0f} s for {RL_STEPS} steps, sampling {GROUP_SIZE * 8} replies "
      f"a step, 3 models in memory; DPO {dpo_seconds:.0f} s for {DPO_STEPS} steps, no sampling, "
      "2 models")  # fmt: skip

# %% [markdown]
# **Is DPO RLHF?** Read your own table. It learns from the same human (here: rater)
# preferences and optimises, in theory, the same objective, so in that sense yes: it is
# "RLHF without the RL". But it never samples the policy, so it only moves the probability of
# replies the tuned model already wrote and the rater already ranked; RL scores the
# policy's *new* replies as it goes, which is how it can find better ones, and how it finds
# the reward model's blind spots when nothing holds it back. DPO is cheaper (no reward model
# to train, no sampling, two models in memory instead of three or four). Which ends higher
# on the rater's true score here, and by more than the noise of a few hundred sampled
# replies (about 0.02-0.04)? `docs/benchmarks.md` (`## rlhf`) has the bench's runs.

# %% [markdown]
# **Is my result normal?** The card puts your four figures beside the bands of recorded runs
# of this notebook's default settings (one per seed), and when one falls outside, names the
# likely causes.

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course.recorded import report_card

report_card(
    "10_rlhf_in_miniature",
    {
        "reward model accuracy": rm_accuracy,
        "tuned true score": measured["tuned (SFT)"]["true"],
        "RL true score": rl_history[-1]["true"],
        "DPO true score": measured["DPO"]["true"],
    },
)

# %% [markdown]
# ## 6. Talk to them
# The same message to the base model, the tuned one, the RL one and the DPO one, each in its
# own conversation, side by side (part 9's chat widget; greedy replies). The base model has
# never seen a chat token: it continues with Shakespeare. Type your own message and press
# Enter.

# %%
# NBVAL_IGNORE_OUTPUT
w = chat_widget(
    {"base": base, "tuned": sft, f"RL, KL {KL_COEF}": rl_policy, "DPO": dpo_policy},
    tok,
    max_new_tokens=MAX_NEW_TOKENS,
    note="a byte-level GPT pretrained on Tiny Shakespeare, not GPT-2",
)
w.chat.send(held_out[0].instruction)
w.chat.send(held_out[1].instruction)
w

# %% [markdown]
# ## The end of the course
# You have built GPT-2 from bytes to text, trained it, loaded OpenAI's weights, adapted them,
# taught a model the chat format, and now run the whole recipe that turned GPT-3 into
# ChatGPT's models: demonstrations, a reward model learned from rankings, reinforcement
# learning held on a leash by a KL penalty, and DPO beside it. The real thing has people
# instead of a rule, and billions of parameters instead of a hundred thousand; the pieces, and
# the ways they go wrong, are the ones you just watched.
