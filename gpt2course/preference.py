"""A toy of learning from preferences: answer pairs (preferred, rejected) and the DPO loss.

RLHF as used for InstructGPT and ChatGPT trains a reward model on human rankings, then
optimises the language model against it with PPO. DPO (Rafailov et al., 2023) reaches the
same objective without the reward model: it raises the log-probability of the preferred
answer relative to the rejected one, measured against a frozen copy of the starting model
so the policy cannot drift arbitrarily far. Here the "human" is a rule: the right answer of
a generated task is preferred to a plausible wrong one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .chat import IGNORE_INDEX, ChatTokenizer, collate, render_conversation
from .instruct import Example


@dataclass(frozen=True)
class PreferencePair:
    """One instruction with a preferred and a rejected answer."""

    instruction: str
    chosen: str
    rejected: str


def rejected_answer(example: Example, rng: random.Random) -> str:
    """A plausible wrong answer: the kind of mistake a half-trained model makes."""
    r, words = example.response, example.instruction.split(": ", 1)[-1].split()
    if example.task in ("add", "count"):
        return str(int(r) + rng.choice([-1, 1]) if int(r) > 0 else int(r) + 1)
    if example.task == "reverse":
        return " ".join(words)  # not reversed at all
    if example.task == "upper":
        return r.lower()
    if example.task == "brackets":
        return f"({r[1:-1]})"
    if example.task == "last":
        return words[0]
    raise ValueError(f"no rejected answer rule for task {example.task!r}")


def preference_pairs(examples: Sequence[Example], seed: int = 0) -> list[PreferencePair]:
    """A pair per example: its right answer preferred to a plausible wrong one."""
    rng = random.Random(seed)
    return [PreferencePair(e.instruction, e.response, rejected_answer(e, rng)) for e in examples]


def sequence_logprobs(
    model: torch.nn.Module,
    instructions: Sequence[str],
    answers: Sequence[str],
    tokenizer: ChatTokenizer,
) -> torch.Tensor:
    """log p(answer + ``<|end|>`` | the user's instruction) under ``model``, per row: (B,)."""
    batch = [
        render_conversation(
            [{"role": "user", "content": i}, {"role": "assistant", "content": a}], tokenizer
        )
        for i, a in zip(instructions, answers, strict=True)
    ]
    device = next(model.parameters()).device
    x, y = collate(batch)
    x, y = x.to(device), y.to(device)
    return token_logprobs(model(x), y).sum(dim=1)  # (B,)


def token_logprobs(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y[b, t]) under ``logits`` (B, T, V) at each labelled position, 0 where y is -100."""
    mask = y != IGNORE_INDEX  # (B, T): the answer's tokens
    logp = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, y.clamp(min=0)[..., None])[..., 0]
    return logp * mask  # (B, T)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's loss, and the per-pair margin (log-ratio of chosen minus that of rejected).

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), averaged over pairs.
    """
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)  # (B,)
    return -F.logsigmoid(beta * margin).mean(), margin.detach()
