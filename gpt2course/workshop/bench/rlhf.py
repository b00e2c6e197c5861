"""``python -m gpt2course bench rlhf [--quick]``: notebook 10's whole miniature, end to end.

A byte-level base pretrained on Tiny Shakespeare, its vocabulary grown by the chat tokens,
instruction-tuned on chats; a reward model trained on its sampled replies ranked by the
rater rule; RL against the reward model with the KL penalty and without it; DPO on the same
pairs. The last line printed is one JSON object: the rater's true score (a fraction of its
maximum, on held-out prompts) of each model, the reward model's held-out pairwise accuracy,
reward-model scores and KL to the tuned model in nats per reply token.
"""

from __future__ import annotations

import copy
import json
import time

import torch

from gpt2course import chat, instruct, rlhf
from gpt2course.device import pick_device
from gpt2course.experiments import shakespeare_base

from ._timing import device_label, parser

# Notebook 10's two settings (its parameter cell holds the same numbers).
SETTINGS = {
    "quick": dict(
        n_embd=64, pretrain=60, tasks=["count", "last"], n_train=1000, n_held_out=48,
        sft_steps=300, rm_replies=8, rm_steps=150, rl_steps=30, kl_coef=1.0, dpo_steps=30,
    ),
    "full": dict(
        n_embd=96, pretrain=200, tasks=["count", "last"], n_train=2000, n_held_out=96,
        sft_steps=600, rm_replies=8, rm_steps=800, rl_steps=60, kl_coef=1.0, dpo_steps=60,
    ),
}  # fmt: skip
GROUP_SIZE, PROMPTS_PER_STEP, MAX_NEW_TOKENS = 8, 8, 16


def tuned_model(settings: dict, device: torch.device, seed: int = 0):
    """The byte-level base pretrained on Tiny Shakespeare, its vocabulary grown by the chat
    tokens, instruction-tuned: ``(tokenizer, tuned, train_set, held_out)``."""
    s = settings
    tok = chat.chat_tokenizer("bytes")
    base = shakespeare_base(2, s["n_embd"], steps=s["pretrain"], context_length=80,
                            device=device, seed=seed)  # fmt: skip
    chat.grow_vocab(base, tok.vocab_size)
    train_set, held_out = instruct.task_split(s["n_train"], s["n_held_out"], seed, s["tasks"])
    sft = copy.deepcopy(base)
    rlhf.instruction_tune(sft, train_set, tok, s["sft_steps"], learning_rate=3e-3,
                          device=device, seed=seed)  # fmt: skip
    return tok, sft.eval().requires_grad_(False), train_set, held_out


def ranked_reward_model(settings: dict, sft, tok, train_set, held_out, device, seed: int = 0):
    """The rater ranks the tuned model's replies to every training prompt, and a reward model
    learns the ranking: ``(rm, samples, pairs, held-out accuracy)``."""
    g = torch.Generator(device=device).manual_seed(seed)
    samples = rlhf.sample_replies(sft, tok, train_set, settings["rm_replies"], MAX_NEW_TOKENS,
                                  generator=g)  # fmt: skip
    # Eight replies to each held-out prompt: a few hundred pairs, so that the accuracy is
    # measured to about +-0.02.
    held = rlhf.sample_replies(sft, tok, held_out, 8, MAX_NEW_TOKENS, generator=g)
    pairs = rlhf.ranked_pairs(samples)
    rm = rlhf.reward_model(sft).requires_grad_(True)
    rlhf.train_reward_model(rm, samples, pairs, settings["rm_steps"], seed=seed)
    rm.requires_grad_(False)
    return rm, samples, pairs, rlhf.pairwise_accuracy(rm, held, rlhf.ranked_pairs(held))


def run(settings: dict, device: torch.device, seed: int = 0, log=print) -> dict:
    """The miniature with ``settings``; the figures of the JSON line."""
    s, t0 = settings, time.perf_counter()

    def say(msg: str) -> None:
        log(f"[{time.perf_counter() - t0:5.0f} s] {msg}")

    tok, sft, train_set, held_out = tuned_model(s, device, seed)
    say("pretrained and instruction-tuned")
    rm, samples, pairs, accuracy = ranked_reward_model(s, sft, tok, train_set, held_out, device,
                                                       seed)  # fmt: skip
    out = {"rm_pairs": len(pairs), "rm_accuracy": accuracy}
    say(f"reward model: {len(pairs)} pairs, held-out accuracy {accuracy:.3f}")

    m = rlhf.measure(sft, sft, rm, tok, held_out, max_new_tokens=MAX_NEW_TOKENS)
    out.update(sft_true=m["true"], sft_reward=m["reward"])
    for name, kl_coef in [("rl", s["kl_coef"]), ("nokl", 0.0)]:
        policy = copy.deepcopy(sft).requires_grad_(True)
        start = time.perf_counter()
        history = rlhf.rl_train(policy, sft, rm, tok, train_set, held_out, s["rl_steps"], kl_coef,
                                PROMPTS_PER_STEP, GROUP_SIZE, max_new_tokens=MAX_NEW_TOKENS,
                                seed=seed)  # fmt: skip
        last = history[-1]
        out.update({f"{name}_true": last["true"], f"{name}_reward": last["reward"],
                    f"{name}_kl": last["kl"], f"{name}_seconds": time.perf_counter() - start})  # fmt: skip
        say(f"{name} (kl_coef {kl_coef}): " + ", ".join(f"{k} {v:.3f}" for k, v in last.items()))

    policy = copy.deepcopy(sft).requires_grad_(True)
    start = time.perf_counter()
    rlhf.dpo_train(policy, sft, samples, pairs, s["dpo_steps"], seed=seed)
    m = rlhf.measure(policy, sft, rm, tok, held_out, max_new_tokens=MAX_NEW_TOKENS)
    out.update(dpo_true=m["true"], dpo_reward=m["reward"], dpo_kl=m["kl"],
               dpo_seconds=time.perf_counter() - start)  # fmt: skip
    say(f"dpo: true {m['true']:.3f}, reward {m['reward']:.3f}, kl {m['kl']:.3f}")
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the miniature; print progress, then the JSON line."""
    p = parser("rlhf", __doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="notebook 10's quick setting (~1 min)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    device = pick_device()
    setting = "quick" if args.quick else "full"
    print(f"bench rlhf ({setting}) on {device_label(device)}")
    out = run(SETTINGS[setting], device, args.seed)
    print(json.dumps({"setting": setting, **{k: round(v, 4) for k, v in out.items()}}))
    return 0
