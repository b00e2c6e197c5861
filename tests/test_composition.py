"""A learner's GPT, written outside the package, works wherever the package's does.

``LearnerGPT`` below is the model of parts 3-5 as a learner writes it: plain ``nn.Module``s,
GPT-2's parameter names, ``forward(idx) -> logits`` and nothing else (no cache argument).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import generation
from gpt2course.data import RandomBatches
from gpt2course.model import GPT, GPTConfig, lm_loss
from gpt2course.train import TrainConfig, train

CFG = GPTConfig(vocab_size=64, context_length=32, n_embd=32, n_layer=2, n_head=4)


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_head)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class LearnerBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(config.n_embd), Attention(config)
        self.ln_2, self.mlp = nn.LayerNorm(config.n_embd), MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class LearnerGPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_length, config.n_embd)
        self.h = nn.ModuleList([LearnerBlock(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def plain_gpt() -> torch.nn.Module:
    """The learner's GPT with the package GPT's (seeded) weights."""
    torch.manual_seed(0)
    model = LearnerGPT(CFG)
    model.load_state_dict(GPT(CFG).state_dict())
    return model.eval()


def test_learner_gpt_gives_the_package_gpts_logits() -> None:
    plain, package = plain_gpt(), GPT(CFG).eval()
    package.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(plain(idx), package(idx), atol=1e-5, rtol=0)


def test_learner_gpt_takes_openai_format_weights(tmp_path) -> None:
    """A checkpoint in GPT-2's format, written by transformers, loads into the learner's GPT."""
    transformers = pytest.importorskip("transformers")
    from gpt2course.pretrained import load_weights

    torch.manual_seed(3)
    hf_config = transformers.GPT2Config(
        vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():  # non-trivial LayerNorms and biases
            if name.endswith(".bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    mine = load_weights(LearnerGPT(CFG), tmp_path).eval()
    idx = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(mine(idx), hf(idx).logits, atol=1e-4, rtol=0)


def test_learner_gpt_in_both_widgets() -> None:
    from gpt2course.widgets.attention import attention_viewer, attention_weights, heatmap_html
    from gpt2course.widgets.sampling import distribution_html, next_token_rows

    class Letters:  # a tokenizer of 64 symbols
        def encode(self, text):
            return [ord(c) % 64 for c in text]

        def decode(self, ids):
            return "".join(chr(48 + i) for i in ids)

    plain, package = plain_gpt(), GPT(CFG).eval()
    package.load_state_dict(plain.state_dict())
    ids = Letters().encode("to be or not to be")
    w = attention_weights(plain, torch.tensor(ids))
    assert w.shape == (2, 4, len(ids), len(ids))
    # The weights are those of the package's model, whose forward is torch's fused kernel.
    torch.testing.assert_close(w, attention_weights(package, torch.tensor(ids)), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, len(ids)))
    assert "<table" in heatmap_html(w[0, 0], [str(i) for i in ids])
    assert attention_viewer(plain, Letters(), "to be or not to be") is not None
    rows = next_token_rows(plain, Letters(), ids, temperature=0.8, top_k=5)
    assert (
        len(rows) == 15
        and abs(sum(r.p for r in next_token_rows(plain, Letters(), ids, top_n=64)) - 1) < 1e-5
    )
    assert "<" in distribution_html(rows)


def test_generation_runs_a_model_without_a_cache_to_the_same_tokens() -> None:
    plain = plain_gpt()
    cached = GPT(CFG).eval()
    cached.load_state_dict(plain.state_dict())
    idx = torch.tensor([[1, 2, 3]])
    a = generation.generate(plain, idx, 40, temperature=0.0)  # past the 32-token context
    b = generation.generate(cached, idx, 40, temperature=0.0)
    assert torch.equal(a, b)


def test_generation_uses_the_learners_sampler() -> None:
    calls = []

    def my_sampler(logits, temperature=1.0, top_k=None, generator=None):
        calls.append((tuple(logits.shape), temperature, top_k))
        return logits.argmax(-1, keepdim=True)

    out = generation.generate(plain_gpt(), torch.tensor([[5]]), 4, temperature=0.7, top_k=3,
                              sampler=my_sampler)  # fmt: skip
    assert calls == [((1, 64), 0.7, 3)] * 4 and out.shape == (1, 5)


def test_train_calls_the_learners_loss_step_and_schedule() -> None:
    used = {"loss": 0, "step": 0, "lr": 0}

    def my_loss(logits, targets):
        used["loss"] += 1
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def my_schedule(step, *, max_lr, min_lr, warmup_steps, max_steps):
        used["lr"] += 1
        return max_lr

    def my_step(model, optimizer, micro_batches, lr, grad_clip=1.0):
        used["step"] += 1
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.zero_grad()
        loss = sum(my_loss(model(x), y) for x, y in micro_batches) / len(micro_batches)
        loss.backward()
        optimizer.step()
        return loss.item()

    # A sequence with something to learn: on uniform random ids the loss starts at its floor
    # (log 64), and whether 5 steps lower it depends on which windows were drawn.
    ids = torch.arange(2000) % 64
    batches = RandomBatches(ids, batch_size=4, context_length=16, seed=0)
    config = TrainConfig(max_steps=5, eval_interval=5, eval_batches=2, warmup_steps=1,
                         progress=False, device="cpu")  # fmt: skip
    history = train(plain_gpt().train(), batches, batches, config,
                    loss_fn=my_loss, step_fn=my_step, lr_fn=my_schedule)  # fmt: skip
    assert used["step"] == 5 and used["lr"] == 5
    assert used["loss"] == 5 + 2, "the step's losses and the validation's"
    assert history.train_loss[-1] < history.train_loss[0]


def test_train_trains_the_learners_gpt_with_the_package_pieces() -> None:
    # A sequence with something to learn: on uniform random ids the loss starts at its floor
    # (log 64), and whether 5 steps lower it depends on which windows were drawn.
    ids = torch.arange(2000) % 64
    batches = RandomBatches(ids, batch_size=4, context_length=16, seed=0)
    config = TrainConfig(max_steps=5, eval_interval=5, eval_batches=2, warmup_steps=1,
                         progress=False, device="cpu")  # fmt: skip
    model = plain_gpt().train()
    before = lm_loss(model(ids[None, :16]), ids[None, 1:17]).item()
    history = train(model, batches, batches, config)
    assert len(history.train_loss) == 5 and history.val_loss
    assert lm_loss(model(ids[None, :16]), ids[None, 1:17]).item() != before
