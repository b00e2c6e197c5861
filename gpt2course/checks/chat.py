"""Checks for part 9: the chat format's render_conversation."""

from __future__ import annotations

import functools

from .. import chat
from ..chat import ChatTokenizer
from ._core import CheckFailure, call, check, say

__all__ = ["check_render_conversation"]

# A system message, two exchanges of different lengths, and a user who types a chat token's
# spelling: on these every usual bug gives different ids or a different mask.
_CONVERSATIONS = [
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add 2 and 3."},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "Now add 4 to it."},
        {"role": "assistant", "content": "9, as 5 + 4."},
    ],
    [
        {"role": "user", "content": "What does <|end|> do?"},
        {"role": "assistant", "content": "It ends a message."},
    ],
]


def _render_variant(messages, tokenizer, *, special_as_text=False, end_after_user=True,
                    learn=("assistant",), role_learned=False, end_learned=True):  # fmt: skip
    """(ids, mask) built the plain way, with knobs that reproduce the usual mistakes."""
    ids, mask = [], []
    for m in messages:
        if special_as_text:
            role, end = tokenizer.encode(f"<|{m['role']}|>"), tokenizer.encode("<|end|>")
        else:
            role, end = [tokenizer.role_token(m["role"])], [tokenizer.end_token]
        if not end_after_user and m["role"] != "assistant":
            end = []
        content, learned = tokenizer.encode(m["content"]), m["role"] in learn
        ids += role + content + end
        mask += [int(learned and role_learned)] * len(role) + [int(learned)] * len(content)
        mask += [int(learned and end_learned)] * len(end)
    return ids, mask


def _first_difference(got: list, want: list, tokenizer: ChatTokenizer) -> str:
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    i = min(len(got), len(want)) if i is None else i
    return (
        f"they first differ at position {i}: after {tokenizer.decode(want[:i])[-30:]!r} "
        f"you have {tokenizer.decode(got[i : i + 3])!r}..., expected "
        f"{tokenizer.decode(want[i : i + 3])!r}..."
    )


@check("render_conversation", chat.render_conversation)
def check_render_conversation(f):
    """Check ``render_conversation(messages, tokenizer) -> (ids, mask)`` on two conversations."""
    for messages, base in zip(_CONVERSATIONS, ("bytes", "gpt2"), strict=True):
        tok = chat.chat_tokenizer(base)
        messages = [dict(m) for m in messages]
        got = call(f, messages, tok, names=["messages"])
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise CheckFailure(
                f"render_conversation should return (ids, mask), got {type(got).__name__}"
            )
        ids, mask = got
        if not (isinstance(ids, list) and isinstance(mask, list)):
            raise CheckFailure(
                f"ids and mask should be two lists, got {type(ids).__name__} and "
                f"{type(mask).__name__} (collate turns lists into tensors later)"
            )
        want_ids, want_mask = chat.render_conversation(messages, tok)
        v = functools.partial(_render_variant, messages, tok)
        id_bugs = [
            (
                (
                    "the chat tokens are written as text: encode('<|end|>') gives seven "
                    "ordinary tokens, the spelling, not the control token",
                    "use tokenizer.role_token(role) and tokenizer.end_token: ids after the "
                    "base vocabulary, which no text can produce",
                ),
                v(special_as_text=True)[0],
            ),
            (
                "every message ends with <|end|>, the user's and the system's too, not only "
                "the assistant's",
                v(end_after_user=False)[0],
            ),
        ]
        if ids != want_ids:
            for hint, wrong in id_bugs:
                if ids == wrong:
                    raise CheckFailure(
                        f"the ids are wrong ({base} tokenizer). Likely bug: {say(hint)}"
                    )
            raise CheckFailure(
                f"the ids are wrong ({base} tokenizer): {_first_difference(ids, want_ids, tok)}"
            )
        if len(mask) != len(ids):
            raise CheckFailure(
                f"ids and mask have different lengths ({len(ids)} and {len(mask)}): one mask "
                "entry per id, 1 where that id is the assistant's to learn"
            )
        if any(m not in (0, 1) for m in mask):
            raise CheckFailure(f"the mask holds {sorted(set(map(repr, mask)))}: use 0 and 1")
        mask_bugs = [
            ("the mask is inverted: 1 on the assistant's tokens, 0 elsewhere",
             [1 - m for m in want_mask]),
            ("the assistant's role token is learned: the format writes <|assistant|>, the "
             "model only writes what follows it; mask it 0", v(role_learned=True)[1]),
            ("the <|end|> after each assistant reply must be learned (mask 1): it is how the "
             "model learns to stop", v(end_learned=False)[1]),
            ("the user's messages are learned: only the assistant's replies get mask 1",
             v(learn=("user", "assistant"))[1]),
            ("the system message is learned: only the assistant's replies get mask 1",
             v(learn=("system", "assistant"))[1]),
            (("the mask is one token off: mask[i] says whether ids[i] itself is learned",
              "collate does the shift to next-token labels; here, mark the reply's own tokens"),
             want_mask[1:] + [0]),
            (("the mask is one token off: mask[i] says whether ids[i] itself is learned",
              "collate does the shift to next-token labels; here, mark the reply's own tokens"),
             [0] + want_mask[:-1]),
        ]  # fmt: skip
        if [int(m) for m in mask] != want_mask:
            learned = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
            for hint, wrong in mask_bugs:
                if [int(m) for m in mask] == wrong:
                    raise CheckFailure(f"the mask is wrong. Likely bug: {say(hint)}")
            raise CheckFailure(
                f"the mask is wrong: it learns {learned!r}, expected "
                f"{tok.decode([i for i, m in zip(ids, want_mask, strict=True) if m])!r}"
            )
