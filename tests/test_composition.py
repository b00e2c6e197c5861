"""The learner's own model, loss, step and sampler plug into the package's loop and generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2course import checks, generation
from gpt2course.data import RandomBatches
from gpt2course.model import GPT, GPTConfig, lm_loss
from gpt2course.train import TrainConfig, train

CFG = GPTConfig(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4)


def plain_gpt() -> torch.nn.Module:
    """A GPT with the exercise's interface (idx -> logits, no cache), the package's weights."""
    torch.manual_seed(0)
    Plain = checks.model.reference_gpt()
    return Plain(CFG).eval()


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

    ids = torch.randint(0, 64, (2000,), generator=torch.Generator().manual_seed(0))
    batches = RandomBatches(ids, batch_size=4, block_size=16, seed=0)
    config = TrainConfig(max_steps=5, eval_interval=5, eval_batches=2, warmup_steps=1,
                         progress=False, device="cpu")  # fmt: skip
    history = train(plain_gpt().train(), batches, batches, config,
                    loss_fn=my_loss, step_fn=my_step, lr_fn=my_schedule)  # fmt: skip
    assert used["step"] == 5 and used["lr"] == 5
    assert used["loss"] == 5 + 2, "the step's losses and the validation's"
    assert history.train_loss[-1] < history.train_loss[0]


def test_the_reference_step_with_the_package_gpt_is_unchanged() -> None:
    """train_step now asks the model for logits only; the loss is the one GPT computes."""
    torch.manual_seed(0)
    model = GPT(CFG)
    x = torch.randint(0, 64, (2, 8))
    y = torch.randint(0, 64, (2, 8))
    assert torch.equal(lm_loss(model(x), y), model(x, y)[1])
