"""Instruction tuning on conversations: the task set, follow-ups that need the earlier turns,
held-out splits, greedy replies against a decoding loop written here, and a short tuning run."""

from __future__ import annotations

import pytest
import torch

from gpt2course import instruct
from gpt2course.chat import chat_tokenizer, collate, greedy_replies, grow_vocab, render_conversation
from gpt2course.instruct import (
    Conversation,
    Example,
    conversation_split,
    converse,
    exact_match,
    make_tasks,
    task_split,
)
from gpt2course.model import GPT, GPTConfig, lm_loss


def test_task_set_is_seeded_checkable_and_split_without_overlap():
    assert make_tasks(60, seed=3) == make_tasks(60, seed=3)
    assert make_tasks(60, seed=3) != make_tasks(60, seed=4)
    train, test = task_split(600, 120, seed=0)
    assert len(train) == 600 and len(test) == 120
    assert not {e.instruction for e in train} & {e.instruction for e in test}
    assert {e.task for e in test} == set(instruct.TASKS)
    for e in train + test:  # every answer is right and fits on one line
        assert "\n" not in e.response
        words = e.instruction.split(": ", 1)[-1].split()
        if e.task == "add":
            a, b = (int(t.strip(".")) for t in e.instruction.split()[1::2])
            assert e.response == str(a + b)
        elif e.task == "reverse":
            assert e.response.split() == words[::-1]
        elif e.task == "upper":
            assert e.response == words[0].upper()
        elif e.task == "brackets":
            assert e.response == f"[{words[0]}]"
        elif e.task == "count":
            assert e.response == str(len(words))
        elif e.task == "last":
            assert e.response == words[-1]


def test_exact_match():
    assert exact_match(["3", " ABC ", "x"], ["3", "ABC", "y"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="predictions"):
        exact_match(["a"], ["a", "b"])


def test_follow_ups_compute_on_the_previous_answer():
    train, test = conversation_split(600, 200, seed=0)
    assert not {c.turns[0].instruction for c in train} & {c.turns[0].instruction for c in test}
    assert {len(c.turns) for c in train} == {1, 2, 3}
    for c in train + test:
        for prev, turn in zip(c.turns, c.turns[1:], strict=False):
            r, got = prev.response, turn.response
            if turn.instruction.startswith("Now add "):
                assert int(got) == int(r) + int(turn.instruction.split()[2])
            elif turn.instruction == "And reverse that.":
                assert got.split() == r.split()[::-1]
            elif turn.instruction == "Now in capitals.":
                assert got == r.upper() != r
            else:
                assert turn.instruction == "Put that in brackets." and got == f"[{r}]"
    assert converse(make_tasks(50, seed=2), seed=3) == converse(make_tasks(50, seed=2), seed=3)


def test_a_conversation_renders_as_alternating_messages():
    c = Conversation(
        (Example("Add 2 and 3.", "5", "add"), Example("Now add 4 to it.", "9", "add to it"))
    )
    assert c.messages() == [
        {"role": "user", "content": "Add 2 and 3."},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "Now add 4 to it."},
        {"role": "assistant", "content": "9"},
    ]
    assert c.messages(1) == c.messages()[:2]
    asked = instruct.turn_prompts([c])
    assert [(len(p), t.response, k) for p, t, k in asked] == [(1, "5", 1), (3, "9", 2)]


def test_greedy_replies_are_argmax_decoding_cut_at_the_end_token():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=260, context_length=64, n_embd=32, n_layer=1, n_head=2))
    model.eval()
    tok = chat_tokenizer("bytes")
    end = tok.special["<|end|>"]
    with torch.no_grad():  # make <|end|> the argmax after a few tokens for some prompts
        model.wte.weight[end] *= 4
    asked = [
        [{"role": "user", "content": "Capitals: abc"}],
        [{"role": "user", "content": "Brackets: xyz"}],
        [{"role": "user", "content": "Capitals: ab"}],
    ]
    got = greedy_replies(model, tok, asked, max_new_tokens=6)
    for messages, answer in zip(asked, got, strict=True):
        # Reference: one prompt at a time, argmax of the full forward pass, no cache.
        ids = [tok.special["<|user|>"], *messages[0]["content"].encode(), end]
        ids.append(tok.special["<|assistant|>"])
        new = []
        for _ in range(6):
            nxt = int(model(torch.tensor([ids + new]))[0, -1].argmax())
            if nxt == end:
                break
            new.append(nxt)
        assert answer == bytes(i for i in new if i < 256).decode("utf-8", "replace")


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="choose from"):
        make_tasks(5, tasks=["poetry"])
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match="no conversations"):
        instruct.evaluate(None, [], chat_tokenizer("bytes"))
    with pytest.raises(ValueError, match="max_turns"):
        converse(make_tasks(2), max_turns=0)


@pytest.fixture
def one_thread():
    # Tiny matmuls gain nothing from threads, and on a busy CI machine threads thrash.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_tuning_on_conversations_beats_the_untuned_model_per_turn(one_thread):
    torch.manual_seed(0)
    tok = chat_tokenizer("bytes")
    train, test = conversation_split(800, 60, seed=0, tasks=["count", "last"])
    model = GPT(GPTConfig(vocab_size=256, context_length=160, n_embd=64, n_layer=2, n_head=4))
    grow_vocab(model, tok.vocab_size)
    before = instruct.evaluate(model, test, tok)
    data = [render_conversation(c.messages(), tok) for c in train]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(200):
        x, y = collate([data[i] for i in torch.randint(len(data), (16,), generator=g)])
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = instruct.evaluate(model, test, tok)
    assert after["all"] >= before["all"] + 0.15, (before, after)
    assert {"turn 1", "turn 2"} <= after.keys()


# ---- the preference toy ----------------------------------------------------------------


def test_dpo_loss_is_the_papers_formula():
    import math

    from gpt2course.preference import dpo_loss

    pc, pr = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-3.5, -4.0]), torch.tensor([-3.5, -3.0])
    loss, margin = dpo_loss(pc, pr, rc, rr, beta=0.5)
    m = [(-3.0 + 3.5) - (-4.0 + 3.5), (-5.0 + 4.0) - (-2.0 + 3.0)]
    want = sum(math.log1p(math.exp(-0.5 * v)) for v in m) / 2  # -log sigmoid(z) = log(1 + e^-z)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert margin.tolist() == pytest.approx(m)


def test_sequence_logprobs_sum_the_answer_tokens_only():
    from gpt2course.preference import sequence_logprobs

    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=260, context_length=128, n_embd=32, n_layer=1, n_head=2)
    ).eval()
    tok = chat_tokenizer("bytes")
    instructions, answers = ["Capitals: ab", "Last word: dog cat"], ["AB", "cat"]
    with torch.no_grad():
        got = sequence_logprobs(model, instructions, answers, tok)
    for i, (inst, ans) in enumerate(zip(instructions, answers, strict=True)):
        # Reference: the prompt written out by hand, then each answer token's log-probability.
        ids = [tok.special["<|user|>"], *inst.encode(), tok.special["<|end|>"]]
        ids.append(tok.special["<|assistant|>"])
        want = 0.0
        for t in [*ans.encode(), tok.special["<|end|>"]]:
            with torch.no_grad():
                want += torch.log_softmax(model(torch.tensor([ids]))[0, -1], -1)[t].item()
            ids.append(t)
        assert got[i].item() == pytest.approx(want, abs=1e-4)


def test_rejected_answers_are_wrong():
    from gpt2course.preference import preference_pairs

    pairs = preference_pairs(make_tasks(120, seed=5))
    assert all(p.rejected != p.chosen for p in pairs)
