"""The instruction-tuning pieces against hand-built references, tiktoken, and greedy decoding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt2course import instruct
from gpt2course.instruct import (
    IGNORE_INDEX,
    Example,
    collate,
    encode_example,
    exact_match,
    format_prompt,
    greedy_answers,
    make_tasks,
    task_split,
)
from gpt2course.model import GPT, GPTConfig, lm_loss
from gpt2course.tokenizer.named import ByteTokenizer


def test_collate_masks_exactly_the_prompt_and_padding():
    batch = [([1, 2, 3], [4, 5]), ([6, 7], [8, 9, 10, 11])]
    x, y = collate(batch, pad_id=0)
    # Built by hand: x is the sequence without its last token, y the next tokens,
    # with -100 where the next token is a prompt token or padding.
    want_x = torch.tensor([[1, 2, 3, 4, 0], [6, 7, 8, 9, 10]])
    want_y = torch.tensor([[-100, -100, 4, 5, -100], [-100, 8, 9, 10, 11]])
    assert torch.equal(x, want_x)
    assert torch.equal(y, want_y)


def test_masked_loss_is_the_mean_over_response_tokens_only():
    torch.manual_seed(0)
    batch = [([5, 6, 7, 8], [9, 3]), ([1, 2], [3, 4, 5])]
    x, y = collate(batch)
    logits = torch.randn(*x.shape, 11)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
    # Reference: log-probs of each response token given everything before it, by hand.
    terms = []
    for b, (prompt, response) in enumerate(batch):
        for j, tok in enumerate(response):
            pos = len(prompt) - 1 + j
            terms.append(-torch.log_softmax(logits[b, pos], -1)[tok])
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_encode_example_with_tiktoken_ends_with_endoftext():
    from gpt2course.assets import tiktoken_gpt2

    enc = tiktoken_gpt2()
    ex = Example("Capitals: abc", "ABC", "upper")
    prompt, response = encode_example(ex, enc)
    assert enc.decode(prompt) == "### Instruction:\nCapitals: abc\n### Response:\n"
    assert response == enc.encode("ABC") + [50256]
    assert prompt + response[:-1] == enc.encode(format_prompt(ex.instruction) + "ABC")


def test_byte_tokenizer_round_trips_and_ends_answers_with_a_newline():
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("héllo [x]")) == "héllo [x]"
    assert encode_example(Example("Add 1 and 2.", "3", "add"), tok)[1] == [ord("3"), ord("\n")]


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


def test_greedy_answers_are_argmax_decoding_cut_at_the_end_token():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=256, context_length=128, n_embd=32, n_layer=1, n_head=2)
    ).eval()
    tok = ByteTokenizer()
    instructions = ["Capitals: abc", "Brackets: xyz", "Capitals: abd"]
    got = greedy_answers(model, instructions, tok, max_new_tokens=6)
    for inst, answer in zip(instructions, got, strict=True):
        # Reference: one prompt at a time, argmax of the full forward pass, no cache.
        ids = tok.encode(format_prompt(inst))
        new = []
        for _ in range(6):
            nxt = int(model(torch.tensor([ids + new]))[0, -1].argmax())
            if nxt == tok.eot_token:
                break
            new.append(nxt)
        assert answer == tok.decode(new)


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="choose from"):
        make_tasks(5, tasks=["poetry"])
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match="response marker"):
        format_prompt("Reverse: a b\n### Response:\nb a")


@pytest.fixture
def one_thread():
    # Tiny matmuls gain nothing from threads, and on a busy CI machine threads thrash.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_instruction_tuning_beats_the_untuned_model_on_held_out_tasks(one_thread):
    torch.manual_seed(0)
    tok = ByteTokenizer()
    tasks = ["count", "last"]
    train, test = task_split(800, 60, seed=0, tasks=tasks)
    model = GPT(GPTConfig(vocab_size=256, context_length=128, n_embd=64, n_layer=2, n_head=4))
    before = instruct.evaluate(model, test, tok)["all"]
    data = [encode_example(e, tok) for e in train]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(200):
        x, y = collate([data[i] for i in torch.randint(len(data), (16,), generator=g)])
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = instruct.evaluate(model, test, tok)["all"]
    assert after >= before + 0.15, (before, after)


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
        GPTConfig(vocab_size=256, context_length=128, n_embd=32, n_layer=1, n_head=2)
    ).eval()
    tok = ByteTokenizer()
    instructions, answers = ["Capitals: ab", "Last word: dog cat"], ["AB", "cat"]
    with torch.no_grad():
        got = sequence_logprobs(model, instructions, answers, tok)
    for i, (inst, ans) in enumerate(zip(instructions, answers, strict=True)):
        ids = tok.encode(format_prompt(inst))
        want = 0.0
        for t in tok.encode(ans) + [tok.eot_token]:
            with torch.no_grad():
                want += torch.log_softmax(model(torch.tensor([ids]))[0, -1], -1)[t].item()
            ids.append(t)
        assert got[i].item() == pytest.approx(want, abs=1e-4)


def test_rejected_answers_are_wrong():
    from gpt2course.preference import preference_pairs

    pairs = preference_pairs(make_tasks(120, seed=5))
    assert all(p.rejected != p.chosen for p in pairs)
