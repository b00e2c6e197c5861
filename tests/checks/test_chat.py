"""The checks of notebook 09 (the chat format's render_conversation) and the DPO loss."""

import pytest
import torch
import torch.nn.functional as F

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


def dpo(pc, pr, rc, rr, beta=0.1, bug=None):
    m = (pc - rc) - (pr - rr)
    if bug == "reversed":
        m = -m
    if bug == "no_ref":
        m = pc - pr
    z = m if bug == "no_beta" else beta * m
    loss = {
        "sum": lambda: -F.logsigmoid(z).sum(),
        "no_log": lambda: -torch.sigmoid(z).mean(),
        "no_minus": lambda: F.logsigmoid(z).mean(),
    }.get(bug, lambda: -F.logsigmoid(z).mean())()
    if bug == "only_loss":
        return loss
    if bug == "item":
        return loss.item(), m.detach()
    return loss, m.detach()


DPO_WRONG = [
    ("reversed", "the margin is reversed"),
    ("no_ref", "the reference model's log-probabilities are missing"),
    ("no_beta", "beta is not applied"),
    ("sum", "average it over the pairs"),
    ("no_log", "the log is missing"),
    ("no_minus", "the minus sign is missing"),
    ("only_loss", "return (loss, margin)"),
    ("item", "a Python number has no graph"),
]


@pytest.mark.parametrize("bug, expect", DPO_WRONG, ids=[b for b, _ in DPO_WRONG])
def test_dpo_loss_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_dpo_loss, lambda *a, beta=0.1: dpo(*a, beta=beta, bug=bug), expect)


def dpo_softplus(pc, pr, rc, rr, beta=0.1):
    """Right, another way: -log sigmoid(z) = softplus(-z), and the log-ratios first."""
    chosen, rejected = pc - rc, pr - rr
    return F.softplus(-beta * (chosen - rejected)).mean(), chosen - rejected


def dpo_log_sigmoid(pc, pr, rc, rr, beta=0.1):
    """Right for the margins training meets: torch.log of torch.sigmoid."""
    m = (pc - rc) - (pr - rr)
    return -torch.log(torch.sigmoid(beta * m)).mean(), m


def test_dpo_reference_matches_the_papers_formula():
    # Rafailov et al. 2023, eq. 7: -log sigma(beta log(pi_c/ref_c) - beta log(pi_r/ref_r))
    from gpt2course.preference import dpo_loss

    pc, pr, rc, rr = (
        torch.tensor([-3.0]),
        torch.tensor([-5.0]),
        torch.tensor([-4.0]),
        torch.tensor([-4.5]),
    )
    z = 0.1 * ((-3.0 + 4.0) - (-5.0 + 4.5))
    want = -torch.log(torch.sigmoid(torch.tensor(z)))
    assert torch.allclose(dpo_loss(pc, pr, rc, rr, beta=0.1)[0], want)


RIGHT = [
    (checks.check_render_conversation, render_variant),
    (checks.check_render_conversation, render_by_segments),
    (checks.check_render_conversation, render_with_bools),
    (checks.check_dpo_loss, lambda *a, beta=0.1: dpo(*a, beta=beta)),
    (checks.check_dpo_loss, dpo_softplus),
    (checks.check_dpo_loss, dpo_log_sigmoid),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize("check", [checks.check_render_conversation, checks.check_dpo_loss])
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
