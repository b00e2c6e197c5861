"""A chat format: roles written with special tokens that the base vocabulary does not have.

A conversation is a list of ``{"role": ..., "content": ...}`` messages. Each message is
rendered as its role's token, its content as ordinary text, and ``<|end|>``::

    <|system|>You are terse.<|end|><|user|>Add 2 and 3.<|end|><|assistant|>5<|end|>

The chat tokens get ids after the base vocabulary (from 256 for bytes, from 50257 for
GPT-2's BPE), so the model's embedding table (tied to its output head) grows by four rows
and nothing else changes. Text is always encoded as text: a user who types ``<|end|>``
gets the ordinary tokens of those seven characters, never the control token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .generation import generate
from .tokenizer.named import ByteTokenizer, TiktokenGPT2, Tokenizer

IGNORE_INDEX = -100  # what F.cross_entropy (and lm_loss) skips
ROLES = ("system", "user", "assistant")
END = "<|end|>"
CHAT_TOKENS = tuple(f"<|{role}|>" for role in ROLES) + (END,)


class ChatTokenizer:
    """A base tokenizer with the chat tokens added after its vocabulary."""

    def __init__(self, base: Tokenizer, base_vocab_size: int, name: str) -> None:
        self.base, self.base_vocab_size, self.name = base, base_vocab_size, name
        self.special = {t: base_vocab_size + i for i, t in enumerate(CHAT_TOKENS)}
        self.vocab_size = base_vocab_size + len(CHAT_TOKENS)
        self.end_token = self.eot_token = self.special[END]

    def role_token(self, role: str) -> int:
        """The id of ``role``'s token (``"system"``, ``"user"`` or ``"assistant"``)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        return self.special[f"<|{role}|>"]

    def encode(self, text: str) -> list[int]:
        """Text -> base ids; a chat token's spelling in ``text`` stays ordinary text."""
        return self.base.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text, chat tokens spelled out."""
        out, run = [], []
        for i in ids:
            if i >= self.base_vocab_size:
                out.append(self.base.decode(run) + CHAT_TOKENS[i - self.base_vocab_size])
                run = []
            else:
                run.append(i)
        return "".join(out) + self.base.decode(run)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token; a chat token's are its spelling."""
        if token >= self.base_vocab_size:
            return CHAT_TOKENS[token - self.base_vocab_size].encode()
        return self.base.decode_single_token_bytes(token)


def chat_tokenizer(base: str) -> ChatTokenizer:
    """``"bytes"`` (ids 0-255, chat tokens from 256) or ``"gpt2"`` (chat tokens from 50257)."""
    if base == "bytes":
        return ChatTokenizer(ByteTokenizer(), 256, "bytes+chat")
    if base == "gpt2":
        enc = TiktokenGPT2()
        return ChatTokenizer(enc, enc.vocab_size, "gpt2+chat")
    raise ValueError(f"unknown base tokenizer {base!r}: use 'bytes' or 'gpt2'")


def _check_messages(messages: Sequence[Mapping[str, str]]) -> None:
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise ValueError("a conversation is a non-empty list of {'role': ..., 'content': ...}")
    for n, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"message {n} must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in ROLES:
            raise ValueError(
                f"message {n} has unknown role {m['role']!r}: use one of {', '.join(ROLES)}"
            )
        if not isinstance(m["content"], str):
            raise ValueError(f"message {n}'s content must be a str, got {type(m['content'])}")
        if m["role"] == "system" and n > 0:
            raise ValueError(f"message {n} is a system message: only the first may be one")


def render_conversation(
    messages: Sequence[Mapping[str, str]], tokenizer: ChatTokenizer
) -> tuple[list[int], list[int]]:
    """``(ids, mask)``: the rendered conversation, and 1 where a token is the assistant's to learn.

    The mask covers each assistant reply's content and its ``<|end|>`` (the model must learn
    to stop), never the role tokens (the format puts those there, not the model).
    """
    _check_messages(messages)
    ids, mask = [], []
    for m in messages:
        content = tokenizer.encode(m["content"]) + [tokenizer.end_token]
        learn = int(m["role"] == "assistant")
        ids += [tokenizer.role_token(m["role"])] + content
        mask += [0] + [learn] * len(content)
    return ids, mask


def render_prompt(messages: Sequence[Mapping[str, str]], tokenizer: ChatTokenizer) -> list[int]:
    """The conversation so far and ``<|assistant|>``: the model's turn to write."""
    _check_messages(messages)
    if messages[-1]["role"] == "assistant":
        raise ValueError("the conversation already ends with the assistant: add a user message")
    return render_conversation(messages, tokenizer)[0] + [tokenizer.role_token("assistant")]


def collate(
    batch: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad rendered ``(ids, mask)`` conversations into inputs ``x`` and labels ``y``, both (B, T).

    ``y[i]`` is the next token where the mask says the model should learn it, else -100
    (which the loss skips), so only the assistant's replies are learned.
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    T = max(len(ids) for ids, _ in batch) - 1
    x = torch.full((len(batch), T), pad_id, dtype=torch.long)
    y = torch.full((len(batch), T), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(batch):
        ids, mask = torch.tensor(ids), torch.tensor(mask, dtype=torch.bool)
        x[row, : len(ids) - 1] = ids[:-1]
        y[row, : len(ids) - 1] = torch.where(mask[1:], ids[1:], IGNORE_INDEX)
    return x, y


@torch.no_grad()
def grow_vocab(model: nn.Module, vocab_size: int) -> nn.Module:
    """Give ``model`` ``vocab_size`` token rows, the new ones at the mean of the old ones.

    The mean keeps the new tokens' logits at the average token's (a random row could start
    them far likelier or unlikelier than anything else); the output head stays tied.
    """
    old = model.wte.weight  # (V, C)
    if vocab_size < old.size(0):
        raise ValueError(f"vocab_size {vocab_size} is below the model's {old.size(0)}")
    wte = nn.Embedding(vocab_size, old.size(1), device=old.device, dtype=old.dtype)
    wte.weight[: old.size(0)] = old
    wte.weight[old.size(0) :] = old.mean(dim=0)
    model.wte = wte
    model.lm_head.weight = wte.weight  # tied again, to the grown table
    model.config.vocab_size = vocab_size
    return model


def _fits(ids: Sequence[int], model: nn.Module) -> None:
    context = model.config.context_length
    if len(ids) + 1 > context:
        raise ValueError(
            f"the conversation is {len(ids)} tokens and the model reads {context}: "
            "start a new chat or drop the earliest turns"
        )


def _cut(new: Sequence[int], tokenizer: ChatTokenizer) -> str:
    """The text of generated ids up to their ``<|end|>``; any other chat token is dropped."""
    new = list(new)
    if tokenizer.end_token in new:
        new = new[: new.index(tokenizer.end_token)]
    return tokenizer.decode([i for i in new if i < tokenizer.base_vocab_size])


def reply(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, str]],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """The model's next assistant message in ``messages``, cut at its ``<|end|>``."""
    ids = render_prompt(messages, tokenizer)
    _fits(ids, model)
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    n = min(max_new_tokens, model.config.context_length - len(ids))
    out = generate(
        model, idx, n, temperature, top_k, eos_token=tokenizer.end_token, generator=generator
    )
    return _cut(out[0, len(ids) :].tolist(), tokenizer)


@torch.no_grad()
def greedy_replies(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    max_new_tokens: int = 64,
) -> list[str]:
    """``reply`` at temperature 0 for many conversations, those of one length in one batch."""
    prompts = [render_prompt(m, tokenizer) for m in conversations]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(prompts):
        _fits(ids, model)
        by_length.setdefault(len(ids), []).append(i)
    device = next(model.parameters()).device
    replies = [""] * len(prompts)
    for length, rows in by_length.items():
        # Same length: no padding, so no attention mask is needed.
        idx = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)  # (B, T)
        n = min(max_new_tokens, model.config.context_length - length)
        # The KV cache: each new token costs one position's forward, not the whole prompt's.
        out = generate(model, idx, n, 0.0, eos_token=tokenizer.end_token, use_cache=True)
        for row, i in enumerate(rows):
            replies[i] = _cut(out[row, length:].tolist(), tokenizer)
    return replies
