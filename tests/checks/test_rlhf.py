"""The checks of notebook 10: the Bradley-Terry loss, the policy-gradient loss and DPO's."""

import pytest
import torch
import torch.nn.functional as F

from gpt2course import checks
from gpt2course.checks.rlhf import _PG_BUGS, _pg

from .conftest import assert_right, assert_stub, assert_wrong


def bt(rc, rr, bug=None):
    d = rc - rr
    return {
        "flipped": lambda: -F.logsigmoid(rr - rc).mean(),
        "no_log": lambda: -torch.sigmoid(d).mean(),
        "no_minus": lambda: F.logsigmoid(d).mean(),
        "sum": lambda: -F.logsigmoid(d).sum(),
        "softmax": lambda: -torch.log_softmax(d, dim=0).mean(),
        "alone": lambda: -(F.logsigmoid(rc) + F.logsigmoid(-rr)).mean(),
        "hinge": lambda: torch.clamp(1 - d, min=0).mean(),
        "detach_rejected": lambda: -F.logsigmoid(rc - rr.detach()).mean(),
        "detach_chosen": lambda: -F.logsigmoid(rc.detach() - rr).mean(),
        "per_pair": lambda: -F.logsigmoid(d),
        "item": lambda: -F.logsigmoid(d).mean().item(),
    }[bug]()


BT_WRONG = [
    ("flipped", "the sign is flipped"),
    ("no_log", "the log is missing"),
    ("no_minus", "the minus sign is missing"),
    ("sum", "average it over the pairs"),
    ("softmax", "the softmax runs over the batch"),
    ("alone", "each reward is scored alone"),
    ("hinge", "hinge"),
    ("detach_rejected", "r_rejected is detached"),
    ("detach_chosen", "r_chosen is detached"),
    ("per_pair", "return one number"),
    ("item", "a Python number has no graph"),
]


@pytest.mark.parametrize("bug, expect", BT_WRONG, ids=[b for b, _ in BT_WRONG])
def test_bradley_terry_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_bradley_terry_loss, lambda rc, rr: bt(rc, rr, bug), expect)


def bt_softplus(r_chosen, r_rejected):
    """Right, another way: -log sigmoid(z) = softplus(-z)."""
    return F.softplus(r_rejected - r_chosen).mean()


def bt_bce(r_chosen, r_rejected):
    """Right, another way: a binary cross-entropy whose label says 'chosen wins'."""
    d = r_chosen - r_rejected
    return F.binary_cross_entropy_with_logits(d, torch.ones_like(d))


def bt_two_way_softmax(r_chosen, r_rejected):
    """Right, another way: a softmax over the two answers of each pair."""
    return -torch.log_softmax(torch.stack([r_chosen, r_rejected], dim=1), dim=1)[:, 0].mean()


def test_bradley_terry_reference_is_the_published_model():
    # Bradley & Terry 1952, as the InstructGPT reward loss: P(a beats b) = sigmoid(r_a - r_b).
    from gpt2course.rlhf import bradley_terry_loss

    rc, rr = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    want = -torch.log(1 / (1 + torch.exp(-(rc - rr)))).mean()
    assert torch.allclose(bradley_terry_loss(rc, rr), want)


def pg(bug=None):
    return lambda lp, ref, r, m, kl_coef: _pg(lp, ref, r, m, kl_coef, bug)


PG_WRONG = [(bug, hint.split(":")[0][:40]) for bug, hint in _PG_BUGS] + [
    ("not_detached", "detach them"),
]


@pytest.mark.parametrize("bug, expect", PG_WRONG, ids=[b for b, _ in PG_WRONG])
def test_policy_gradient_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_policy_gradient_loss, pg(bug), expect)


def pg_ppo_ratio(logprobs, ref_logprobs, rewards, mask, kl_coef):
    """Right, another way: PPO's clipped ratio against the sampling policy (ratio 1 here)."""
    kl = torch.where(mask, logprobs - ref_logprobs, 0.0).sum(-1).detach()
    r = rewards.detach() - kl_coef * kl
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6))[..., None]
    ratio = torch.exp(logprobs - logprobs.detach())
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv)
    per_token = -surrogate * mask
    return (per_token.sum(-1) / mask.sum(-1)).mean()


def pg_flat(logprobs, ref_logprobs, rewards, mask, kl_coef):
    """Right, another way: rows flattened, a loop over the replies, the population std."""
    P, G, T = logprobs.shape
    lps, refs, masks = logprobs.view(P * G, T), ref_logprobs.view(P * G, T), mask.view(P * G, T)
    kl = torch.stack([(lp[m] - ref[m]).sum() for lp, ref, m in zip(lps, refs, masks, strict=True)])
    r = rewards.detach() - kl_coef * kl.detach().view(P, G)
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, correction=0) + 1e-6)
    losses = [-(a * lp[m]).mean() for lp, a, m in zip(lps, adv.flatten(), masks, strict=True)]
    return torch.stack(losses).mean()


def pg_einsum(logprobs, ref_logprobs, rewards, mask, kl_coef):
    """Right, another way: the penalty written per token, then summed; einsum for the loss."""
    m = mask.float()
    penalty = kl_coef * (logprobs.detach() - ref_logprobs) * m  # (P, G, T)
    r = rewards.detach() - penalty.sum(-1)
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)
    weights = m / m.sum(-1, keepdim=True) / (m.shape[0] * m.shape[1])
    return -torch.einsum("pg,pgt,pgt->", adv, logprobs, weights)


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
    (checks.check_bradley_terry_loss, lambda rc, rr: -F.logsigmoid(rc - rr).mean()),
    (checks.check_bradley_terry_loss, bt_softplus),
    (checks.check_bradley_terry_loss, bt_bce),
    (checks.check_bradley_terry_loss, bt_two_way_softmax),
    (checks.check_policy_gradient_loss, pg()),
    (checks.check_policy_gradient_loss, pg_ppo_ratio),
    (checks.check_policy_gradient_loss, pg_flat),
    (checks.check_policy_gradient_loss, pg_einsum),
    (checks.check_dpo_loss, lambda *a, beta=0.1: dpo(*a, beta=beta)),
    (checks.check_dpo_loss, dpo_softplus),
    (checks.check_dpo_loss, dpo_log_sigmoid),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


@pytest.mark.parametrize(
    "check",
    [checks.check_bradley_terry_loss, checks.check_policy_gradient_loss, checks.check_dpo_loss],
)
def test_stub_is_not_done_yet(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    assert_stub(check, stub)
