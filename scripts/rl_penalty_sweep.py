"""RL sweep for notebook 10 at full size: where the KL penalty goes, and how the advantages are made.

Builds the bench's seed-SEED tuned model and reward model (as `python -m gpt2course bench
rlhf` does; the reward model cached in /tmp), then runs RL from the tuned model once per
VARIANT and prints the held-out true score, its gain over the tuned model, the share of right answers and of
replies ending in exactly one "!", and the true score every 10 steps.

A VARIANT is comma-separated key=value pairs (an empty string is the package's loss):
  loss=reward  the KL penalty in the reward (rlhf.policy_gradient_loss, the default)
  loss=k3      GRPO's: the k3 estimate exp(d) - d - 1, d = ref - logp, added to the loss
  loss=k2      0.5 * (logp - ref)^2 added to the loss
  adv=mean     advantages centred only, not divided by the group's std (with loss=k3)
  norm=const   each reply's sum divided by MAX_NEW_TOKENS + 1, not its length (with loss=k3)
  kl=, lr=, P= the KL coefficient, the learning rate, prompts per step

    OMP_NUM_THREADS=1 python scripts/rl_penalty_sweep.py SEED [VARIANT ...]
"""

import copy
import os
import sys
import time

import torch

from gpt2course import rlhf
from gpt2course.workshop.bench.rlhf import (
    GROUP_SIZE,
    MAX_NEW_TOKENS,
    PROMPTS_PER_STEP,
    SETTINGS,
    ranked_reward_model,
    tuned_model,
)  # fmt: skip

s = SETTINGS["full"]
seed, variants = int(sys.argv[1]), sys.argv[2:] or [""]
dev = torch.device("cpu")
tok, sft, train_set, held_out = tuned_model(s, dev, seed)
cache = f"/tmp/rl_penalty_sweep_{seed}.pt"
if os.path.exists(cache):
    rm = torch.load(cache, weights_only=False)
else:  # the bench's reward model, drawn as it draws it
    rm, *_, acc = ranked_reward_model(s, sft, tok, train_set, held_out, dev, seed)
    print(f"seed {seed}: reward model held-out accuracy {acc:.3f}", flush=True)
    torch.save(rm, cache)


def in_loss(form: str, centre_only: bool = False, const_norm: bool = False):
    """The penalty as a term of the loss, per token (GRPO's way)."""

    def loss(logprobs, ref_logprobs, rewards, mask, kl_coef):
        r = rewards.detach()
        adv = r - r.mean(dim=1, keepdim=True)
        if not centre_only:
            adv = adv / (r.std(dim=1, keepdim=True) + 1e-6)
        d = ref_logprobs - logprobs
        kl = torch.exp(d) - d - 1 if form == "k3" else 0.5 * d**2
        per_token = (-adv[..., None] * logprobs + kl_coef * kl) * mask
        length = MAX_NEW_TOKENS + 1 if const_norm else mask.sum(-1).clamp(min=1)
        return (per_token.sum(-1) / length).mean()

    return loss


def shares(policy) -> tuple[float, float]:
    """Right answers and replies ending in exactly one "!", on the measure's samples."""
    g = torch.Generator(device=dev).manual_seed(1234)  # rlhf.measure's seed: the same replies
    smp = rlhf.sample_replies(policy, tok, held_out, 8, MAX_NEW_TOKENS, generator=g)
    rows = list(zip(smp.replies, smp.answers, strict=True))
    right = sum(r.rstrip("!").strip() == a.strip() for r, a in rows) / len(rows)
    one = sum(r.endswith("!") and not r.endswith("!!") for r, _ in rows) / len(rows)
    return right, one


tuned = rlhf.measure(sft, sft, rm, tok, held_out, max_new_tokens=MAX_NEW_TOKENS)["true"]
right, one = shares(sft)
print(f"seed {seed} tuned: true {tuned:.3f}, right {right:.1%}, one '!' {one:.1%}", flush=True)
for v in variants:
    kw = dict(x.split("=") for x in v.split(",") if x)
    form = kw.get("loss", "reward")
    loss_fn = (rlhf.policy_gradient_loss if form == "reward" else
               in_loss(form, kw.get("adv") == "mean", kw.get("norm") == "const"))  # fmt: skip
    policy = copy.deepcopy(sft).requires_grad_(True)
    t0 = time.perf_counter()
    history = rlhf.rl_train(policy, sft, rm, tok, train_set, held_out, s["rl_steps"],
                            float(kw.get("kl", s["kl_coef"])), int(kw.get("P", PROMPTS_PER_STEP)),
                            GROUP_SIZE, learning_rate=float(kw.get("lr", 5e-4)),
                            max_new_tokens=MAX_NEW_TOKENS, seed=seed, loss_fn=loss_fn)  # fmt: skip
    last, (right, one) = history[-1], shares(policy)
    print(f"seed {seed} [{v or 'loss=reward'}] true {last['true']:.3f} ({last['true'] - tuned:+.3f}), "
          f"KL {last['kl']:.3f}, right {right:.1%}, one '!' {one:.1%}, every 10 steps "
          + " ".join(f"{h['true']:.3f}" for h in history)
          + f" ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
