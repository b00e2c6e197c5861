"""RLHF in miniature: a rule that plays the human rater, a reward model trained on its
rankings, and reinforcement learning against the reward model with a KL penalty.

The recipe is InstructGPT's (Ouyang et al. 2022): people rank sampled answers, a reward
model (the tuned GPT with a one-number head) learns their ranking with the Bradley-Terry
loss, and the tuned model is optimised against it by a policy gradient, held near the
tuned model by a KL penalty in the reward. Here the "people" are ``rater_score``, and the
policy gradient uses GRPO's group-normalised advantages (Shao et al. 2024): several
answers per prompt, each scored against its group's mean, so no value network is needed.

Every reply is a chat turn (``gpt2course.chat``): the prompt is rendered up to
``<|assistant|>``, the reply ends with ``<|end|>``, and only the reply's tokens are learned.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .callbacks import History
from .chat import IGNORE_INDEX, ChatTokenizer, collate, render_conversation, render_prompt
from .generation import generate
from .instruct import Example
from .preference import dpo_loss, token_logprobs
from .train import TrainConfig, train

POLITE = "!"  # the rater likes one at the end of a reply, and hates two


def rater_score(reply: str, answer: str, finished: bool = True) -> float:
    """The rule that plays the human rater, as a fraction of its maximum (0 to 1).

    0.75 for the right answer, 0.25 for ending it with one "!" (friendly). Two or more "!"
    is shouting, and a reply that never ends is rambling: both score 0.
    """
    body = reply.rstrip(POLITE)
    bangs = len(reply) - len(body)
    if bangs > 1 or not finished:
        return 0.0
    return 0.75 * (body.strip() == answer.strip()) + 0.25 * bangs


def chat_example(
    example: Example, tokenizer: ChatTokenizer, bangs: int = 0
) -> tuple[list[int], list[int]]:
    """``(ids, mask)`` of one task as a single-turn chat, its answer ending in ``bangs`` "!"."""
    messages = [
        {"role": "user", "content": example.instruction},
        {"role": "assistant", "content": example.response + POLITE * bangs},
    ]
    return render_conversation(messages, tokenizer)


def instruction_tune(
    model: nn.Module,
    examples: Sequence[Example],
    tokenizer: ChatTokenizer,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> History:
    """Supervised fine-tuning on ``examples`` as chats with part 6's ``train``; the answers
    end in "!" or not, half and half (demonstrations vary, as people's do); only the
    replies are learned."""
    rng = random.Random(seed)
    data = [chat_example(e, tokenizer, rng.randrange(2)) for e in examples]
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size, shuffle=True, collate_fn=collate, generator=g)
    config = TrainConfig(
        max_steps=steps,
        learning_rate=learning_rate,
        min_lr=learning_rate / 10,
        warmup_steps=min(30, steps // 5),
        weight_decay=0.0,
        device=str(device),
        progress=False,
        seed=seed,
    )
    return train(model, loader, None, config)


# ---- sampled replies ----------------------------------------------------------------------


@dataclass
class Rollouts:
    """``group_size`` sampled replies to each of several prompts, rows grouped by prompt.

    ``ids`` (N, L) holds each prompt + reply, padded with 0; ``x`` and ``y`` (N, L - 1) are
    the inputs and the labels (-100 except on the reply's tokens, ``<|end|>`` included).
    """

    ids: torch.Tensor
    lengths: torch.Tensor  # (N,) tokens of each row before its padding
    x: torch.Tensor
    y: torch.Tensor
    replies: list[str]
    finished: list[bool]  # whether the reply ended with <|end|>
    answers: list[str]  # the right answer of each row's task
    group_size: int

    def true_scores(self) -> torch.Tensor:
        """The rater's score of each reply, (N,)."""
        rows = zip(self.replies, self.answers, self.finished, strict=True)
        return torch.tensor([rater_score(r, a, f) for r, a, f in rows])


@torch.no_grad()
def sample_replies(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    examples: Sequence[Example],
    group_size: int,
    max_new_tokens: int = 16,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Rollouts:
    """``group_size`` replies sampled from ``model`` to each example's instruction."""
    device = next(model.parameters()).device
    end = tokenizer.end_token
    prompts = [
        render_prompt([{"role": "user", "content": e.instruction}], tokenizer) for e in examples
    ]
    by_length: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(i)
    sampled: list[list[list[int]]] = [[] for _ in examples]  # each example's G replies
    for length, rows in by_length.items():
        # Prompts of one length in one batch: no padding, so no attention mask is needed.
        idx = torch.tensor([prompts[i] for i in rows for _ in range(group_size)], device=device)
        out = generate(model, idx, max_new_tokens, temperature, eos_token=end, use_cache=True,
                       generator=generator)[:, length:].tolist()  # fmt: skip
        for k, i in enumerate(rows):
            sampled[i] = out[k * group_size : (k + 1) * group_size]
    batch, replies, finished, answers = [], [], [], []
    for e, prompt, rows in zip(examples, prompts, sampled, strict=True):
        for row in rows:
            done = end in row
            reply = row[: row.index(end) + 1] if done else row
            batch.append((prompt + reply, [0] * len(prompt) + [1] * len(reply)))
            replies.append(tokenizer.decode([t for t in reply if t < tokenizer.base_vocab_size]))
            finished.append(done)
            answers.append(e.response)
    x, y = collate(batch)
    lengths = torch.tensor([len(ids) for ids, _ in batch])
    ids = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)  # (N, L)
    ids[torch.arange(len(batch)), lengths - 1] = torch.tensor([s[-1] for s, _ in batch])
    x, y, ids = x.to(device), y.to(device), ids.to(device)
    return Rollouts(ids, lengths.to(device), x, y, replies, finished, answers, group_size)


# ---- the reward model ---------------------------------------------------------------------


def reward_model(tuned: nn.Module) -> nn.Module:
    """A copy of ``tuned`` whose head writes one number per position instead of logits.

    Its forward gives (B, T, 1); a sequence's reward is the number at its last token, which
    has read the whole prompt and reply.
    """
    rm = copy.deepcopy(tuned)
    rm.lm_head = nn.Linear(rm.config.n_embd, 1, device=rm.wte.weight.device)  # untied from wte
    nn.init.zeros_(rm.lm_head.weight), nn.init.zeros_(rm.lm_head.bias)
    return rm


def sequence_rewards(rm: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The reward model's score of each row of ``ids`` (N, L), read at its last token: (N,)."""
    scores = rm(ids)[..., 0]  # (N, L)
    return scores[torch.arange(ids.size(0), device=ids.device), lengths - 1]


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected), averaged over the pairs: P(chosen wins) modelled."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def ranked_pairs(samples: Rollouts) -> list[tuple[int, int]]:
    """Every pair of replies to the same prompt that the rater scores differently, better first."""
    true, G = samples.true_scores(), samples.group_size
    rows = []
    for start in range(0, len(true), G):
        for i in range(start, start + G):
            for j in range(i + 1, start + G):
                if true[i] != true[j]:
                    rows.append((i, j) if true[i] > true[j] else (j, i))
    return rows


def _pick(samples: Rollouts, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.tensor(rows, device=samples.ids.device)
    L = int(samples.lengths[idx].max())
    return samples.ids[idx, :L], samples.lengths[idx]


def pair_rewards(rm: nn.Module, samples: Rollouts, rows: Sequence[tuple[int, int]]):
    """The reward model's (r_chosen, r_rejected), each (B,), for the pairs ``rows``."""
    ids, lengths = _pick(samples, [c for c, _ in rows] + [r for _, r in rows])
    r = sequence_rewards(rm, ids, lengths)
    return r[: len(rows)], r[len(rows) :]


def train_reward_model(
    rm: nn.Module,
    samples: Rollouts,
    rows: Sequence[tuple[int, int]],
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = bradley_terry_loss,
) -> list[float]:
    """Train ``rm`` on the ranked pairs ``rows`` of ``samples``; the loss of each step."""
    if not rows:
        raise ValueError("no preference pairs: sample more replies per prompt")
    opt = torch.optim.AdamW(rm.parameters(), lr=learning_rate, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    rm.train()
    for _ in range(steps):
        batch = [rows[i] for i in torch.randint(len(rows), (batch_size,), generator=g)]
        loss = loss_fn(*pair_rewards(rm, samples, batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    rm.eval()
    return losses


@torch.no_grad()
def pairwise_accuracy(rm: nn.Module, samples: Rollouts, rows: Sequence[tuple[int, int]]) -> float:
    """How often the reward model scores the rater's preferred reply higher."""
    chosen, rejected = pair_rewards(rm, samples, rows)
    return (chosen > rejected).float().mean().item()


# ---- reinforcement learning ---------------------------------------------------------------


def policy_gradient_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """-advantage * log pi per reply token, the KL penalty inside the reward, as InstructGPT.

    ``logprobs``, ``ref_logprobs`` and ``mask`` are (P, G, T): G replies to each of P prompts,
    the log-probability of each sampled token, 1 in ``mask`` on the reply's tokens. Each
    reply's reward (P, G) loses ``kl_coef`` times its log-ratio log pi - log pi_ref summed
    over its tokens (a one-sample estimate of the reply's KL to the reference); the rewards
    become advantages by normalising within each group, as GRPO does. Each reply's tokens
    are averaged, then the replies.
    """
    m = mask.to(logprobs.dtype)
    # The penalty is part of the score, like the reward model's: data, not optimised through.
    kl = ((logprobs - ref_logprobs).detach() * m).sum(-1)  # (P, G)
    r = rewards.detach() - kl_coef * kl
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + 1e-6)  # (P, G)
    per_token = -adv[..., None] * logprobs  # (P, G, T)
    return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()


def _logprobs(model: nn.Module, rollouts: Rollouts) -> torch.Tensor:
    """(N, T) log-probabilities of the sampled tokens, 0 off the replies."""
    return token_logprobs(model(rollouts.x), rollouts.y)


@torch.no_grad()
def measure(
    policy: nn.Module,
    reference: nn.Module,
    rm: nn.Module,
    tokenizer: ChatTokenizer,
    examples: Sequence[Example],
    samples_per_prompt: int = 8,
    max_new_tokens: int = 16,
    seed: int = 1234,
) -> dict[str, float]:
    """On ``examples``: the rater's mean score ("true"), the reward model's ("reward") and
    the KL to ``reference`` in nats per reply token ("kl"), over seeded samples."""
    g = torch.Generator(device=next(policy.parameters()).device).manual_seed(seed)
    s = sample_replies(policy, tokenizer, examples, samples_per_prompt, max_new_tokens, generator=g)
    mask = s.y != IGNORE_INDEX
    kl = (_logprobs(policy, s) - _logprobs(reference, s))[mask].mean()
    return {
        "true": s.true_scores().mean().item(),
        "reward": sequence_rewards(rm, s.ids, s.lengths).mean().item(),
        "kl": kl.item(),
    }


def rl_train(
    policy: nn.Module,
    reference: nn.Module,
    rm: nn.Module,
    tokenizer: ChatTokenizer,
    examples: Sequence[Example],
    held_out: Sequence[Example],
    steps: int,
    kl_coef: float,
    prompts_per_step: int = 8,
    group_size: int = 8,
    learning_rate: float = 5e-4,
    max_new_tokens: int = 16,
    eval_every: int = 10,
    seed: int = 0,
    loss_fn: Callable[..., torch.Tensor] = policy_gradient_loss,
) -> list[dict[str, float]]:
    """Optimise ``policy`` against ``rm`` with ``loss_fn``; ``measure`` on ``held_out`` at
    step 0 and every ``eval_every`` steps (one dict per measurement, with its "step")."""
    if group_size < 2:
        raise ValueError("group_size must be at least 2: advantages compare replies to one prompt")
    opt = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=0.0)
    device = next(policy.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    pick = random.Random(seed)
    P, G = prompts_per_step, group_size

    def record(step: int) -> dict[str, float]:
        m = measure(policy, reference, rm, tokenizer, held_out, max_new_tokens=max_new_tokens)
        return {"step": step, **m}

    history = [record(0)]
    for step in range(1, steps + 1):
        s = sample_replies(policy, tokenizer, pick.sample(list(examples), P), G, max_new_tokens,
                           generator=g)  # fmt: skip
        with torch.no_grad():
            rewards = sequence_rewards(rm, s.ids, s.lengths).view(P, G)
            ref = _logprobs(reference, s)
        policy.train()
        logp = _logprobs(policy, s)
        mask = s.y != IGNORE_INDEX
        T = logp.size(1)
        loss = loss_fn(logp.view(P, G, T), ref.view(P, G, T), rewards, mask.view(P, G, T), kl_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        policy.eval()
        if step % eval_every == 0 or step == steps:
            history.append(record(step))
    return history


# ---- DPO on the same pairs ----------------------------------------------------------------


def dpo_train(
    policy: nn.Module,
    reference: nn.Module,
    samples: Rollouts,
    rows: Sequence[tuple[int, int]],
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    beta: float = 0.1,
    seed: int = 0,
    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] = dpo_loss,
) -> list[float]:
    """DPO on the reward model's pairs, with no reward model: the loss of each step."""
    opt = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        batch = [rows[i] for i in torch.randint(len(rows), (batch_size,), generator=g)]
        idx = torch.tensor([c for c, _ in batch] + [r for _, r in batch], device=samples.x.device)
        x, y = samples.x[idx], samples.y[idx]
        with torch.no_grad():
            ref = token_logprobs(reference(x), y).sum(-1)  # (2B,)
        policy.train()
        pol = token_logprobs(policy(x), y).sum(-1)
        B = len(batch)
        loss, _ = loss_fn(pol[:B], pol[B:], ref[:B], ref[B:], beta=beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    policy.eval()
    return losses
