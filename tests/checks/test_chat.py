"""The checks of notebook 09: the chat format's render_conversation."""

import pytest
import torch

from gpt2course import checks
from gpt2course.chat import chat_tokenizer

from .conftest import assert_right, assert_stub, assert_wrong


def render_variant(messages, tokenizer, bug=None):
    """render_conversation written the plain way, with one of the learners' usual bugs."""
    ids, mask = [], []
    for m in messages:
        if bug == "special_as_text":
            role, end = tokenizer.encode(f"<|{m['role']}|>"), tokenizer.encode("<|end|>")
        else:
            role, end = [tokenizer.role_token(m["role"])], [tokenizer.end_token]
        if bug == "no_end_after_user" and m["role"] != "assistant":
            end = []
        content = tokenizer.encode(m["content"])
        learn = m["role"] == "assistant" or (bug == "system_learned" and m["role"] == "system")
        if bug == "user_learned":
            learn = m["role"] != "system"
        ids += role + content + end
        mask += [int(learn and bug == "role_masked")] * len(role)
        mask += [int(learn)] * len(content)
        mask += [int(learn and bug != "end_unmasked")] * len(end)
    if bug == "shifted":  # mask[i] says whether ids[i + 1] is learned: the labels' view
        mask = mask[1:] + [0]
    if bug == "per_message":
        mask = [m["role"] == "assistant" for m in messages]
    if bug == "inverted":
        mask = [1 - v for v in mask]
    return ids, mask


def render_in_place(messages, tokenizer):
    if messages[0]["role"] == "system":  # takes the system message off the caller's list
        system = [messages.pop(0)]
        return tuple(a + b for a, b in zip(render_variant(system, tokenizer),
                                           render_variant(messages, tokenizer), strict=True))  # fmt: skip
    return render_variant(messages, tokenizer)


RENDER_WRONG = [
    ("role_masked", "role token is learned"),
    ("end_unmasked", "the <|end|> after each assistant reply must be learned"),
    ("user_learned", "the user's messages are learned"),
    ("special_as_text", "written as text"),
    ("shifted", "one token off"),
    ("system_learned", "the system message is learned"),
    ("no_end_after_user", "every message ends with <|end|>"),
    ("per_message", "one mask entry per id"),
    ("inverted", "the mask is inverted"),
]


@pytest.mark.parametrize("bug, expect", RENDER_WRONG, ids=[b for b, _ in RENDER_WRONG])
def test_render_conversation_wrong_solutions_are_named(bug, expect):
    assert_wrong(
        checks.check_render_conversation, lambda m, t: render_variant(m, t, bug=bug), expect
    )


def test_render_conversation_that_changes_its_messages_is_refused():
    assert_wrong(checks.check_render_conversation, render_in_place, "in place")


def test_render_conversation_returning_tensors_is_refused():
    def as_tensors(m, t):
        ids, mask = render_variant(m, t)
        return torch.tensor(ids), torch.tensor(mask)

    assert_wrong(checks.check_render_conversation, as_tensors, "lists")


def render_by_segments(messages, tokenizer):
    """Right, another way: a list of (tokens, learned) segments, flattened at the end."""
    segments = []
    for m in messages:
        learned = m["role"] == "assistant"
        segments.append(([tokenizer.role_token(m["role"])], False))
        segments.append((tokenizer.encode(m["content"]) + [tokenizer.end_token], learned))
    ids = [t for seg, _ in segments for t in seg]
    mask = [int(learned) for seg, learned in segments for _ in seg]
    return ids, mask


def render_with_bools(messages, tokenizer):
    """Right, another way: the special ids from the tokenizer's table, the mask as booleans."""
    ids, mask = [], []
    for m in messages:
        body = [tokenizer.special[f"<|{m['role']}|>"], *tokenizer.encode(m["content"])]
        body.append(tokenizer.special["<|end|>"])
        ids.extend(body)
        mask.extend([False] + [m["role"] == "assistant"] * (len(body) - 1))
    return ids, mask


def test_render_conversation_check_uses_a_real_conversation():
    tok = chat_tokenizer("bytes")
    ids, mask = render_by_segments(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}], tok
    )
    assert tok.decode(ids) == "<|user|>Hi<|end|><|assistant|>Yo<|end|>"
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "Yo<|end|>"


RIGHT = [
    (checks.check_render_conversation, render_variant),
    (checks.check_render_conversation, render_by_segments),
    (checks.check_render_conversation, render_with_bools),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


def test_stub_is_not_done_yet():
    check = checks.check_render_conversation

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
