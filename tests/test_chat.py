"""The chat format: special tokens after the base vocabulary, text always text, the loss mask."""

import pytest
import tiktoken
import torch

from gpt2course.chat import (
    CHAT_TOKENS,
    chat_tokenizer,
    collate,
    grow_vocab,
    render_conversation,
    reply,
)
from gpt2course.config import GPTConfig
from gpt2course.model import GPT


@pytest.mark.parametrize("base,first", [("bytes", 256), ("gpt2", 50257)])
def test_chat_tokens_follow_the_base_vocabulary(base, first):
    tok = chat_tokenizer(base)
    assert sorted(tok.special.values()) == list(range(first, first + len(CHAT_TOKENS)))
    assert tok.vocab_size == first + len(CHAT_TOKENS)
    # A user who types a chat token's spelling gets ordinary tokens.
    assert all(i < first for i in tok.encode("<|end|><|assistant|>"))


def test_gpt2_text_ids_are_tiktokens():
    tok = chat_tokenizer("gpt2")
    text = "Hello, world!\n\n  <|endoftext|>"
    assert tok.encode(text) == tiktoken.get_encoding("gpt2").encode_ordinary(text)


def test_mask_covers_assistant_content_and_its_end_token():
    tok = chat_tokenizer("bytes")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Yo!"},
    ]
    ids, mask = render_conversation(messages, tok)
    assert len(ids) == len(mask)
    learned = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tok.decode(learned) == "Yo<|end|>Yo!<|end|>"
    assert tok.decode(ids).startswith("<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>")


@pytest.mark.parametrize(
    "messages,match",
    [
        ([], "non-empty"),
        ([{"role": "robot", "content": "x"}], "unknown role"),
        ([{"role": "user"}], "'role' and 'content'"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "first"),
    ],
)
def test_bad_conversations_get_one_line(messages, match):
    with pytest.raises(ValueError, match=match):
        render_conversation(messages, chat_tokenizer("bytes"))


def test_grown_vocab_keeps_the_old_rows_and_the_tie():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, context_length=16, n_layer=1, n_head=2, n_embd=8))
    old = model.wte.weight.detach().clone()
    grow_vocab(model, 260)
    assert model.lm_head.weight is model.wte.weight
    assert torch.equal(model.wte.weight[:256], old)
    assert torch.allclose(model.wte.weight[256:], old.mean(0).expand(4, -1))
    assert model(torch.tensor([[256, 1, 259]])).shape == (1, 3, 260)


def test_reply_refuses_a_conversation_longer_than_the_context():
    model = GPT(GPTConfig(vocab_size=260, context_length=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match="start a new chat"):
        reply(model, chat_tokenizer("bytes"), [{"role": "user", "content": "far too long"}])


def test_collate_learns_exactly_the_masked_next_tokens():
    tok = chat_tokenizer("bytes")
    a = render_conversation(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}], tok
    )
    b = render_conversation(
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "!"}], tok
    )
    x, y = collate([a, b])
    assert x.shape == y.shape == (2, len(b[0]) - 1)
    assert torch.equal(x[0, : len(a[0]) - 1], torch.tensor(a[0][:-1]))
    learned = [t for t in y[0].tolist() if t != -100]
    assert tok.decode(learned) == "Yo<|end|>"
    assert tok.decode([t for t in y[1].tolist() if t != -100]) == "!<|end|>"


def test_a_standin_is_not_tuned_unless_asked(tmp_path, capsys):
    from gpt2course.experiments import chat_base
    from gpt2course.pretrained import write_standin_checkpoint

    path = write_standin_checkpoint(tmp_path / "standin", n_layer=1, n_head=2, n_embd=32)
    model, tok, what = chat_base(n_layer=1, n_embd=16, steps=1, gpt2=str(path))
    assert tok.name == "bytes+chat" and "byte-level" in what
    assert "random stand-in, not GPT-2" in capsys.readouterr().out


def test_the_gpt2_path_on_the_standin_checkpoint(tmp_path):
    """GPT-2's path, mechanics only: the stand-in has GPT-2's vocabulary and random weights."""
    from gpt2course.experiments import chat_base
    from gpt2course.instruct import converse, make_tasks
    from gpt2course.model import lm_loss
    from gpt2course.pretrained import write_standin_checkpoint

    path = write_standin_checkpoint(tmp_path / "standin", n_layer=1, n_head=2, n_embd=32)
    model, tok, what = chat_base(gpt2=str(path), allow_standin=True)
    assert "stand-in" in what and "NOT GPT-2" in what  # never presented as GPT-2
    assert tok.name == "gpt2+chat" and model.config.vocab_size == 50257
    old = model.wte.weight.detach().clone()
    grow_vocab(model, tok.vocab_size)
    assert model.wte.weight.shape == (50261, 32)
    assert model.lm_head.weight is model.wte.weight
    assert torch.equal(model.wte.weight[:50257], old)
    conversations = converse(make_tasks(4, seed=0), seed=0)
    rendered = [render_conversation(c.messages(), tok) for c in conversations]
    for c, (ids, mask) in zip(conversations, rendered, strict=True):
        learned = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
        assert learned == "".join(t.response + "<|end|>" for t in c.turns)
        # GPT-2's own ids for the text: tiktoken's, with the chat tokens from 50257.
        enc = tiktoken.get_encoding("gpt2")
        assert ids[1 : 1 + len(enc.encode(c.turns[0].instruction))] == enc.encode(
            c.turns[0].instruction
        )
    x, y = collate(rendered)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = lm_loss(model(x), y)
    loss.backward()
    assert model.wte.weight.grad[50257:].abs().sum() > 0  # the new rows learn
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(
        model.wte.weight[50257:], old.mean(0).expand(4, -1)
    )
