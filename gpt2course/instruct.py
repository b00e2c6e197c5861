"""Instruction tuning in miniature: a prompt format, a masked-loss collate, and a task set
with checkable answers, so that "the model follows instructions better" is a number.

Each example is an instruction and its one right answer. The model sees
``format_prompt(instruction) + response + <end>`` and learns only from the response
tokens: the prompt's labels are -100, which ``F.cross_entropy`` ignores. That is the
whole difference between instruction tuning and pretraining.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from .generation import generate

INSTRUCTION_MARKER = "### Instruction:\n"
# The response marker tells the model "your turn": at inference we stop the prompt here
# and let it write.
RESPONSE_MARKER = "\n### Response:\n"
IGNORE_INDEX = -100  # what F.cross_entropy (and our GPT's loss) skips


@dataclass(frozen=True)
class Example:
    """One instruction, its one right answer, and the task it comes from."""

    instruction: str
    response: str
    task: str


def format_prompt(instruction: str) -> str:
    """The prompt the model sees: the instruction between the two markers."""
    if RESPONSE_MARKER.strip() in instruction:
        raise ValueError(
            f"the instruction must not contain the response marker {RESPONSE_MARKER!r}"
        )
    return f"{INSTRUCTION_MARKER}{instruction}{RESPONSE_MARKER}"


def encode_example(example: Example, tokenizer) -> tuple[list[int], list[int]]:
    """``(prompt_ids, response_ids)``; the response ends with the tokenizer's end token.

    ``tokenizer`` has ``encode(str)`` and ``eot_token`` (tiktoken's GPT-2 encoding or
    ``ByteTokenizer``).
    """
    prompt = tokenizer.encode(format_prompt(example.instruction))
    response = tokenizer.encode(example.response) + [tokenizer.eot_token]
    return prompt, response


def collate(
    batch: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``(prompt_ids, response_ids)`` pairs into inputs ``x`` and labels ``y``, both (B, T).

    ``y`` is ``x`` shifted left by one (the next token), with -100 wherever the next token is
    part of the prompt or is padding: the loss then counts only the response.
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    seqs, labels = [], []
    for prompt, response in batch:
        if len(prompt) == 0 or len(response) == 0:
            raise ValueError("each example needs a non-empty prompt and a non-empty response")
        ids = list(prompt) + list(response)
        seqs.append(ids[:-1])
        # Position i predicts ids[i + 1]; the first len(prompt) - 1 targets are prompt tokens.
        labels.append([IGNORE_INDEX] * (len(prompt) - 1) + list(response))
    x = [torch.tensor(s, dtype=torch.long) for s in seqs]
    y = [torch.tensor(lab, dtype=torch.long) for lab in labels]  # each as long as its input
    # Both (B, T), batch first: x padded with pad_id, y with IGNORE_INDEX.
    return pad_sequence(x, True, pad_id), pad_sequence(y, True, IGNORE_INDEX)


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


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference (surrounding spaces ignored)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return 0.0
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return hits / len(references)


@torch.no_grad()
def greedy_answers(
    model: torch.nn.Module,
    instructions: Sequence[str],
    tokenizer,
    max_new_tokens: int = 24,
) -> list[str]:
    """The model's greedy answer to each instruction, cut at its end token.

    Prompts of the same length are generated together, so no padding or attention mask
    is needed.
    """
    device = next(model.parameters()).device
    prompts = [tokenizer.encode(format_prompt(i)) for i in instructions]
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    answers: list[str] = [""] * len(prompts)
    for length, rows in by_length.items():
        idx = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)  # (B, T)
        out = generate(model, idx, max_new_tokens, temperature=0.0, eos_token=tokenizer.eot_token)
        for row, i in enumerate(rows):
            new = out[row, length:].tolist()
            if tokenizer.eot_token in new:
                new = new[: new.index(tokenizer.eot_token)]
            answers[i] = tokenizer.decode(new)
    return answers


def evaluate(model: torch.nn.Module, examples: Sequence[Example], tokenizer) -> dict[str, float]:
    """Exact-match accuracy overall (key ``"all"``) and per task, with greedy answers."""
    if not examples:
        raise ValueError("no examples to evaluate on")
    # One token past the longest right answer is enough to tell right from wrong.
    max_new_tokens = max(len(tokenizer.encode(e.response)) for e in examples) + 1
    preds = greedy_answers(model, [e.instruction for e in examples], tokenizer, max_new_tokens)
    scores = {"all": exact_match(preds, [e.response for e in examples])}
    for task in sorted({e.task for e in examples}):
        pairs = [(p, e.response) for p, e in zip(preds, examples, strict=True) if e.task == task]
        scores[task] = exact_match([p for p, _ in pairs], [r for _, r in pairs])
    return scores
