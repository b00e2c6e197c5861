"""Reward-model sweep for notebook 10 at full size: how many ranked prompts and steps it needs.

Builds the bench's seed-SEED base and tuned model (as `python -m gpt2course bench rlhf` does),
then for each PROMPTS:STEPS trains a reward model on eight replies to each of the first PROMPTS
training prompts and prints its accuracy on its own pairs (the first 2,000) and held out.

    OMP_NUM_THREADS=1 python scripts/reward_model_sweep.py [SEED] [PROMPTS:STEPS ...]
"""

import sys
import time

import torch

from gpt2course import rlhf
from gpt2course.workshop.bench.rlhf import MAX_NEW_TOKENS, SETTINGS, tuned_model

s = SETTINGS["full"]
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
variants = sys.argv[2:] or ["600:800", "600:1600", "1200:800", "2000:800"]
dev = torch.device("cpu")
tok, sft, train_set, held_out = tuned_model(s, dev, seed)
for v in variants:
    prompts, steps = map(int, v.split(":"))
    # As the bench draws them: the training replies, then the held-out ones, from one generator.
    g = torch.Generator(device=dev).manual_seed(seed)
    samples = rlhf.sample_replies(sft, tok, train_set[:prompts], s["rm_replies"], MAX_NEW_TOKENS,
                                  generator=g)  # fmt: skip
    held = rlhf.sample_replies(sft, tok, held_out, 8, MAX_NEW_TOKENS, generator=g)
    pairs, held_pairs = rlhf.ranked_pairs(samples), rlhf.ranked_pairs(held)
    t0 = time.perf_counter()
    rm = rlhf.reward_model(sft).requires_grad_(True)
    rlhf.train_reward_model(rm, samples, pairs, steps, seed=seed)
    own = rlhf.pairwise_accuracy(rm, samples, pairs[:2000])
    out = rlhf.pairwise_accuracy(rm, held, held_pairs)
    print(f"{prompts} prompts, {len(pairs)} pairs, {steps} steps: own pairs {own:.3f}, "
          f"held out {out:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
