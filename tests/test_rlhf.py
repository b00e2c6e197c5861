"""RLHF in miniature: the rater, the reward model's reading, the losses against torch's own
functions and the published formulas, and a few steps of each loop on a tiny model."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from gpt2course import chat, instruct, rlhf
from gpt2course.model import GPT, GPTConfig
from gpt2course.preference import token_logprobs

TOK = chat.chat_tokenizer("bytes")


def tiny(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, context_length=80, n_layer=1, n_head=2,
                         n_embd=16)).eval()  # fmt: skip


def test_rater_rewards_the_answer_and_one_exclamation_mark_and_punishes_shouting():
    assert rlhf.rater_score("3", "3") == 0.75
    assert rlhf.rater_score("3!", "3") == 1.0
    assert rlhf.rater_score("4!", "3") == 0.25
    assert rlhf.rater_score("3!!", "3") == 0.0
    assert rlhf.rater_score("3!", "3", finished=False) == 0.0


def test_sampled_replies_are_labelled_on_the_reply_only_and_end_at_end_token():
    # The first and last prompts have one length, so they are sampled in one batch: each row
    # must still follow its own prompt, in the examples' order.
    examples = [
        instruct.Example(f"Count the words: {words}", str(len(words.split())), "count")
        for words in ["dog moon", "apple tiger lamp", "cat star"]
    ]
    g = torch.Generator().manual_seed(0)
    s = rlhf.sample_replies(tiny(), TOK, examples, group_size=2, max_new_tokens=5, generator=g)
    assert s.ids.shape[0] == s.x.shape[0] == 6 and s.x.shape == s.y.shape
    for row in range(6):
        n = int(s.lengths[row])
        prompt = chat.render_prompt([{"role": "user", "content": s_instr(examples, row)}], TOK)
        assert s.ids[row, : len(prompt)].tolist() == prompt
        labelled = (s.y[row] != chat.IGNORE_INDEX).nonzero()[:, 0]
        # The first reply token is predicted at the prompt's last position (<|assistant|>).
        assert labelled.tolist() == list(range(len(prompt) - 1, n - 1))
        assert s.y[row, labelled].tolist() == s.ids[row, len(prompt) : n].tolist()
        assert s.finished[row] == (s.ids[row, n - 1].item() == TOK.end_token)


def s_instr(examples, row: int) -> str:
    return examples[row // 2].instruction


def test_reward_is_read_at_each_rows_last_token_whatever_the_padding():
    rm = rlhf.reward_model(tiny())
    torch.nn.init.normal_(rm.lm_head.weight)  # a head that is not zero, as after training
    a, b = [5, 6, 7, 8], [9, 10]
    both = torch.tensor([a, b + [0, 0]])
    got = rlhf.sequence_rewards(rm, both, torch.tensor([4, 2]))
    alone = [rm(torch.tensor([s]))[0, -1, 0] for s in (a, b)]
    assert torch.allclose(got, torch.stack(alone), atol=1e-6)
    assert rm.lm_head.weight.shape == (1, 16) and rm.wte.weight.shape[0] == TOK.vocab_size


def test_token_logprobs_is_cross_entropy_per_token():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    y = torch.tensor([[1, 2, -100, 4, -100], [-100, 3, 3, 0, 10]])
    want = -F.cross_entropy(logits.transpose(1, 2), y, reduction="none", ignore_index=-100)
    assert torch.allclose(token_logprobs(logits, y), want, atol=1e-6)


def test_the_penalty_alone_pulls_the_policy_back_along_the_kls_gradient():
    """With equal rewards, the loss's gradient on samples from pi points along the gradient
    of KL(pi || ref), as torch computes it: the penalty pulls the policy back to the reference.

    The policy favours a token the reference rarely writes, where KL(pi || ref) and
    KL(ref || pi) pull differently (k3 added to the loss follows the second: cosine 0.83)."""
    torch.manual_seed(0)
    theta = torch.tensor([0.0, 0, 0, 0, 0, 3]).requires_grad_()
    ref = torch.distributions.Categorical(logits=torch.tensor([3.0, 0, 0, 0, 0, -3]))
    pi = torch.distributions.Categorical(logits=theta)
    x = pi.sample((20_000,)).view(1, -1, 1)  # one group of 20,000 one-token replies
    logprobs = pi.log_prob(x)
    loss = rlhf.policy_gradient_loss(
        logprobs, ref.log_prob(x), torch.zeros(x.shape[:2]), torch.ones_like(x), 1.0
    )
    (got,) = torch.autograd.grad(loss, theta)
    kl = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=theta), ref)
    (want,) = torch.autograd.grad(kl, theta)
    assert F.cosine_similarity(got, want, dim=0) > 0.99


def test_policy_gradient_without_penalty_is_reinforce_with_the_group_baseline():
    g = torch.Generator().manual_seed(0)
    logprobs = (-torch.rand(2, 3, 4, generator=g)).requires_grad_()
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    mask = torch.ones(2, 3, 4)
    rlhf.policy_gradient_loss(logprobs, logprobs.detach(), rewards, mask, 0.0).backward()
    adv = (rewards - rewards.mean(1, keepdim=True)) / rewards.std(1, keepdim=True)
    # d/dlogp of -mean_replies(mean_tokens(A * logp)) = -A / (tokens * replies)
    want = (-adv / (4 * 6))[..., None].expand(2, 3, 4)
    assert torch.allclose(logprobs.grad, want, atol=1e-5)


def test_ranked_pairs_put_the_raters_favourite_first_within_a_group():
    s = rlhf.Rollouts(ids=torch.zeros(4, 1), lengths=torch.ones(4), x=torch.zeros(4, 1),
                      y=torch.zeros(4, 1), replies=["3!", "3", "4", "3!"],
                      finished=[True] * 4, answers=["3"] * 4, group_size=2)  # fmt: skip
    # Group 1: 1.0 vs 0.75; group 2: 0.0 vs 1.0; ties make no pair.
    assert rlhf.ranked_pairs(s) == [(0, 1), (3, 2)]


def test_each_loop_runs_and_changes_the_policy():
    examples = instruct.make_tasks(8, seed=0, tasks=["count"])
    sft = tiny()
    g = torch.Generator().manual_seed(0)
    s = rlhf.sample_replies(sft, TOK, examples, 4, 4, generator=g)
    rows = rlhf.ranked_pairs(s) or [(0, 1)]
    rm = rlhf.reward_model(sft)
    losses = rlhf.train_reward_model(rm, s, rows, steps=3, batch_size=4)
    assert len(losses) == 3 and 0 <= rlhf.pairwise_accuracy(rm, s, rows) <= 1
    for train in (
        lambda p: rlhf.rl_train(p, sft, rm, TOK, examples, examples[:2], 2, 0.1, 2, 2,
                                max_new_tokens=4, eval_every=1),
        lambda p: rlhf.dpo_train(p, sft, s, rows, 2, batch_size=2),
    ):  # fmt: skip
        policy = copy.deepcopy(sft)
        out = train(policy)
        assert len(out) in (2, 3)
        assert any(
            (a != b).any() for a, b in zip(policy.parameters(), sft.parameters(), strict=True)
        )
    with pytest.raises(ValueError, match="group_size"):
        rlhf.rl_train(copy.deepcopy(sft), sft, rm, TOK, examples, examples, 1, 0.1, 2, 1)
