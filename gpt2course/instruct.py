"""Instruction tuning in miniature: tasks with checkable answers, asked in conversations of
several turns, so that "the model follows instructions better" is a number per turn.

A conversation opens with one of ``TASKS`` ("Add 12 and 30.") and may go on with follow-ups
that only make sense with the earlier turns in view ("Now add 5 to it.", "And reverse
that."). Conversations are written in the chat format of ``gpt2course.chat``; the model
learns only the assistant's replies (the mask of ``render_conversation``). That is the
whole difference between instruction tuning and pretraining.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .chat import ChatTokenizer, greedy_replies


@dataclass(frozen=True)
class Example:
    """One instruction, its one right answer, and the task it comes from."""

    instruction: str
    response: str
    task: str


# ---- the generated task set -------------------------------------------------------------

# The words of the word tasks: common and short.
WORDS = (
    "apple bread cloud dog eagle fire grape house island jam king lemon moon night ocean "
    "pearl queen river stone tiger umbrella violin water yellow zebra bell chair door "
    "engine forest garden honey ink jacket kite lamp mirror nest orange piano rope salt "
    "train uncle vase wheel box yard"
).split()


def _add(rng: random.Random) -> Example:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    return Example(f"Add {a} and {b}.", str(a + b), "add")


def _reverse(rng: random.Random) -> Example:
    words = rng.sample(WORDS, rng.randint(2, 3))
    return Example(f"Reverse: {' '.join(words)}", " ".join(reversed(words)), "reverse")


def _letters(rng: random.Random) -> str:
    # Made-up words: too many to memorise, so the model has to learn the rule itself.
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 7)))


def _upper(rng: random.Random) -> Example:
    word = _letters(rng)
    return Example(f"Capitals: {word}", word.upper(), "upper")


def _brackets(rng: random.Random) -> Example:
    word = _letters(rng)
    return Example(f"Brackets: {word}", f"[{word}]", "brackets")


def _count(rng: random.Random) -> Example:
    words = rng.sample(WORDS, rng.randint(1, 6))
    return Example(f"Count the words: {' '.join(words)}", str(len(words)), "count")


def _last(rng: random.Random) -> Example:
    words = rng.sample(WORDS, rng.randint(2, 5))
    return Example(f"Last word: {' '.join(words)}", words[-1], "last")


TASKS: dict[str, Callable[[random.Random], Example]] = {
    "add": _add,
    "reverse": _reverse,
    "upper": _upper,
    "brackets": _brackets,
    "count": _count,
    "last": _last,
}


def make_tasks(n: int, seed: int = 0, tasks: Sequence[str] | None = None) -> list[Example]:
    """``n`` distinct examples drawn evenly from ``tasks`` (all by default), reproducibly."""
    names = list(tasks) if tasks is not None else list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown tasks {unknown or names}; choose from {', '.join(TASKS)}")
    rng = random.Random(seed)
    out: dict[str, Example] = {}  # by instruction, so that none repeats
    for _ in range(50 * n + 1000):
        if len(out) == n:
            return list(out.values())
        ex = TASKS[names[len(out) % len(names)]](rng)
        out.setdefault(ex.instruction, ex)
    raise ValueError(f"could not draw {n} distinct examples from tasks {names}; ask for fewer")


def task_split(
    n_train: int, n_test: int, seed: int = 0, tasks: Sequence[str] | None = None
) -> tuple[list[Example], list[Example]]:
    """A training set and a held-out set with no instruction in common."""
    examples = make_tasks(n_train + n_test, seed=seed, tasks=tasks)
    rng = random.Random(seed + 1)
    rng.shuffle(examples)
    return examples[:n_train], examples[n_train:]


def follow_up(previous: Example, rng: random.Random) -> Example | None:
    """A next turn that works on ``previous``'s answer ("Now add 5 to it."), or None."""
    r = previous.response
    if r.isdigit():
        n = rng.randint(1, 9)
        return Example(f"Now add {n} to it.", str(int(r) + n), "add to it")
    if " " in r:
        return Example("And reverse that.", " ".join(reversed(r.split())), "reverse that")
    bracketed = r.startswith("[")
    if r != r.upper() and (bracketed or rng.random() < 0.5):
        return Example("Now in capitals.", r.upper(), "capitals of that")
    if not bracketed:
        return Example("Put that in brackets.", f"[{r}]", "brackets of that")
    return None


@dataclass(frozen=True)
class Conversation:
    """A task and its follow-ups: each turn's instruction (the user's) and right answer."""

    turns: tuple[Example, ...]

    def messages(self, n_turns: int | None = None) -> list[dict[str, str]]:
        """The first ``n_turns`` turns (all by default) as chat messages, answers included."""
        out = []
        for t in self.turns[:n_turns]:
            out += [{"role": "user", "content": t.instruction},
                    {"role": "assistant", "content": t.response}]  # fmt: skip
        return out


def converse(first: Sequence[Example], seed: int = 0, max_turns: int = 3) -> list[Conversation]:
    """A conversation per example: it opens the conversation, followed by up to
    ``max_turns - 1`` follow-ups (how many is drawn, reproducibly)."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be at least 1, got {max_turns}")
    rng = random.Random(seed)
    out = []
    for e in first:
        turns = [e]
        for _ in range(rng.randint(1, max_turns) - 1):
            nxt = follow_up(turns[-1], rng)
            if nxt is None:
                break
            turns.append(nxt)
        out.append(Conversation(tuple(turns)))
    return out


def conversation_split(
    n_train: int,
    n_test: int,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    max_turns: int = 3,
) -> tuple[list[Conversation], list[Conversation]]:
    """Training and held-out conversations; no opening instruction is in both (the follow-ups
    are a few fixed phrasings, applied to answers the model has not seen)."""
    train, test = task_split(n_train, n_test, seed=seed, tasks=tasks)
    return converse(train, seed, max_turns), converse(test, seed + 1, max_turns)


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference (surrounding spaces ignored)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return 0.0
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return hits / len(references)


def turn_prompts(conversations: Sequence[Conversation]) -> list[tuple[list[dict], Example, int]]:
    """Every assistant turn to answer: the conversation up to its user message (earlier
    answers the right ones), the turn, and its number (1 = the opening task)."""
    out = []
    for c in conversations:
        for k, turn in enumerate(c.turns):
            prompt = c.messages(k) + [{"role": "user", "content": turn.instruction}]
            out.append((prompt, turn, k + 1))
    return out


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, conversations: Sequence[Conversation], tokenizer: ChatTokenizer
) -> dict[str, float]:
    """Exact match of greedy replies: overall (``"all"``), per turn (``"turn 2"``) and per task.

    Each turn is asked with the right earlier answers in the context, so turn 2's score
    measures turn 2 alone (does the model use what came before?), not turn 1's mistakes.
    """
    if not conversations:
        raise ValueError("no conversations to evaluate on")
    asked = turn_prompts(conversations)
    # One token past the longest right answer is enough to tell right from wrong.
    n = max(len(tokenizer.encode(t.response)) for _, t, _ in asked) + 1
    preds = greedy_replies(model, tokenizer, [p for p, _, _ in asked], n)
    groups: dict[str, list[tuple[str, str]]] = {"all": []}
    for pred, (_, turn, k) in zip(preds, asked, strict=True):
        for key in ("all", f"turn {k}", turn.task):
            groups.setdefault(key, []).append((pred, turn.response))
    return {key: exact_match(*zip(*pairs, strict=True)) for key, pairs in groups.items()}
