"""Checks for part 10: the reward model's Bradley-Terry loss, the policy-gradient loss and DPO's.

Both compare what ``backward()`` gets, the gradients, as well as the loss: a loss whose
value is right but whose gradient is cut or reversed trains nothing, or the wrong way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import preference
from .. import rlhf as reference
from ._core import CheckFailure, call, check, compare_tensors, require_tensor

__all__ = ["check_bradley_terry_loss", "check_dpo_loss", "check_policy_gradient_loss"]


def _grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d each input, zeros where the loss does not reach it."""
    got = torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(got, inputs, strict=True)]


def _scalar_loss(got, what: str = "loss") -> torch.Tensor:
    require_tensor(got, what, grad=True)
    if got.dim() != 0:
        raise CheckFailure(
            f"the {what} has shape {tuple(got.shape)}: return one number, the mean over the "
            "rows (backward() needs a scalar)"
        )
    return got


def _bt_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    # Rewards of both signs and differences of both signs, so a flipped sign shows.
    rc = (torch.randn(8, generator=g) * 2).requires_grad_()
    rr = (torch.randn(8, generator=g) * 2).requires_grad_()
    return rc, rr


@check("bradley_terry_loss", reference.bradley_terry_loss)
def check_bradley_terry_loss(f):
    """Check ``bradley_terry_loss(r_chosen, r_rejected) -> loss``: -log sigmoid of the gap."""
    rc, rr = _bt_inputs()
    loss = _scalar_loss(call(f, rc, rr, names=["r_chosen", "r_rejected"]))
    d = rc - rr
    bugs = [
        (
            "the sign is flipped: the loss should be small when the chosen reward is the larger",
            -F.logsigmoid(-d).mean(),
        ),
        ("the log is missing: -log sigmoid(...), not -sigmoid(...)", -torch.sigmoid(d).mean()),
        ("the minus sign is missing: minimise -log sigmoid", F.logsigmoid(d).mean()),
        ("the loss is summed; average it over the pairs", -F.logsigmoid(d).sum()),
        (
            "the softmax runs over the batch: each pair is its own two-way choice, "
            "sigmoid(r_chosen - r_rejected)",
            -F.log_softmax(d, dim=0).mean(),
        ),
        (
            "each reward is scored alone: the model only knows how two answers compare, "
            "so the loss depends on the difference r_chosen - r_rejected",
            -(F.logsigmoid(rc) + F.logsigmoid(-rr)).mean(),
        ),
        (
            "that is a hinge (margin) loss; Bradley-Terry is -log sigmoid(difference)",
            F.relu(1 - d).mean(),
        ),
    ]
    want = reference.bradley_terry_loss(rc, rr)
    compare_tensors(loss, want, what="loss", likely_bugs=bugs)
    got_c, got_r = _grads(loss, [rc, rr])
    want_c, want_r = _grads(want, [rc, rr])
    detached = "is detached: both rewards come from the reward model, and both need gradients"
    compare_tensors(got_c, want_c, what="gradient of r_chosen",
                    likely_bugs=[(f"r_chosen {detached}", torch.zeros_like(rc))])  # fmt: skip
    compare_tensors(got_r, want_r, what="gradient of r_rejected",
                    likely_bugs=[(f"r_rejected {detached}", torch.zeros_like(rr))])  # fmt: skip


def _pg_inputs():
    """G = 4 replies to each of P = 3 prompts, T = 7 positions: prompt, reply, padding."""
    g = torch.Generator().manual_seed(0)
    P, G, T = 3, 4, 7
    logprobs = (-torch.rand(P, G, T, generator=g) * 3).requires_grad_()
    ref = logprobs.detach() + torch.randn(P, G, T, generator=g) * 0.5
    rewards = (torch.randn(P, G, generator=g) * 2 + torch.arange(P)[:, None] * 3).requires_grad_()
    mask = torch.zeros(P, G, T, dtype=torch.bool)
    for p in range(P):
        for r in range(G):
            start = 1 + (p + r) % 2  # the prompt's last positions
            mask[p, r, start : start + 2 + (p * G + r) % 4] = True  # the reply, then padding
    return logprobs, ref, rewards, mask


def _pg(logprobs, ref, rewards, mask, kl_coef, bug: str | None = None, correction: int = 1):
    """The loss written plainly, with one of the likely bugs."""
    m = torch.ones_like(mask, dtype=logprobs.dtype) if bug == "no_mask" else mask.float()
    ratio = (
        logprobs - ref if bug in ("kl_not_detached", "kl_in_loss") else (logprobs - ref).detach()
    )
    per_reply = ratio * (1 if bug == "kl_unmasked" else m)
    kl = per_reply.sum(-1) / (m.sum(-1) if bug == "kl_mean" else 1)  # (P, G)
    sign = -1 if bug == "kl_sign" else 1
    r = rewards if bug == "not_detached" else rewards.detach()
    if bug not in ("kl_after_norm", "kl_in_loss"):
        r = r - sign * kl_coef * kl
    axis = 0 if bug == "axis" else 1
    adv = r - r.mean(dim=axis, keepdim=True)
    if bug != "no_std":
        adv = adv / (r.std(dim=axis, keepdim=True, correction=correction) + 1e-6)
    if bug == "raw":
        adv = r
    if bug == "kl_after_norm":
        adv = adv - kl_coef * kl
    per_token = (-1 if bug == "pg_sign" else 1) * -adv[..., None] * logprobs * m
    if bug == "kl_in_loss":  # GRPO's way: an estimate of the KL added to the loss per token
        d = ref - logprobs
        per_token = per_token + kl_coef * (torch.exp(d) - d - 1) * m
    if bug == "over_T":
        return per_token.mean(-1).mean()
    if bug == "token_mean":
        return per_token.sum() / m.sum()
    return (per_token.sum(-1) / m.sum(-1)).mean()


_PENALTY = (
    "subtract kl_coef * (logprobs - ref_logprobs), summed over the reply's tokens, from its reward"
)
_PG_BUGS = [
    ("pg_sign", "the policy-gradient term has the wrong sign: the loss is -advantage * log pi, "
                "so that minimising it makes good replies likelier"),
    ("kl_sign", f"the KL penalty has the wrong sign (or the log-ratio is upside down): {_PENALTY}"),
    ("kl_mean", "the KL penalty is averaged over the reply's tokens: sum them, since every "
                "token the tuned model would not write costs the reply its log-ratio"),
    ("kl_unmasked", "the KL penalty is not masked: only the reply's tokens count in it"),
    ("kl_not_detached", "the KL penalty is not detached: like the reward model's score, it "
                        "is part of the reward, a number to follow, not to optimise through"),
    ("kl_after_norm", "the KL penalty comes after the normalisation: subtract it from the "
                      "rewards first, then normalise within each group"),
    ("kl_in_loss", f"the KL is a term of the loss (GRPO's way); here it goes into the reward, "
                   f"as in InstructGPT: {_PENALTY}, before normalising"),
    ("raw", "the rewards are used as advantages: normalise them within each prompt's group"),
    ("no_std", "the advantages are centred but not divided by the group's standard deviation"),
    ("axis", "the advantages are normalised over the prompts (dim 0); normalise over each "
             "prompt's G replies (dim 1)"),
    ("no_mask", "the mask is not applied: prompt and padding tokens count in the loss"),
    ("over_T", "the mean runs over all T positions: divide each reply's sum by its number of "
               "reply tokens (mask.sum), not by T"),
    ("token_mean", "the tokens of all replies are averaged together: average each reply's "
                   "tokens first, then the replies"),
]  # fmt: skip


@check("policy_gradient_loss", reference.policy_gradient_loss)
def check_policy_gradient_loss(f):
    """Check ``policy_gradient_loss(logprobs, ref_logprobs, rewards, mask, kl_coef) -> loss``
    by the gradient it sends into ``logprobs`` (the ratio form of PPO is right too)."""
    for kl_coef in (0.5, 0.05):
        logprobs, ref, rewards, mask = _pg_inputs()
        args = (logprobs, ref, rewards, mask)
        names = ["logprobs", "ref_logprobs", "rewards", "mask"]
        loss = _scalar_loss(call(f, *args, kl_coef=kl_coef, names=names))
        got, got_r = _grads(loss, [logprobs, rewards])
        if got_r.abs().sum() > 0:
            raise CheckFailure(
                "the gradient reaches the rewards: detach them (rewards.detach()) before "
                "making advantages; they are scores to follow, not something to optimise"
            )
        want = _grads(reference.policy_gradient_loss(*args, kl_coef), [logprobs])[0]
        biased = _grads(_pg(*args, kl_coef, correction=0), [logprobs])[0]
        if torch.allclose(got, biased, atol=1e-6, rtol=1e-4):
            continue  # the population standard deviation is fine too
        bugs = [(hint, _grads(_pg(*args, kl_coef, bug), [logprobs])[0]) for bug, hint in _PG_BUGS]
        compare_tensors(got, want, what=f"gradient of the loss wrt logprobs (kl_coef={kl_coef})",
                        atol=1e-6, likely_bugs=bugs)  # fmt: skip


def _dpo_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # Log-probabilities (negative), with policy and reference apart, chosen and rejected apart.
    pc, pr, rc, rr = (-(torch.rand(6, generator=g) * 8 + 1) for _ in range(4))
    return pc.requires_grad_(), pr.requires_grad_(), rc, rr


@check("dpo_loss", preference.dpo_loss)
def check_dpo_loss(f):
    """Check ``dpo_loss(pc, pr, rc, rr, beta=0.1) -> (loss, margin)`` against the paper's form."""
    for beta in (0.1, 0.5):
        pc, pr, rc, rr = _dpo_inputs()
        got = call(f, pc, pr, rc, rr, beta=beta, names=["policy_chosen", "policy_rejected",
                                                        "reference_chosen", "reference_rejected"])  # fmt: skip
        if isinstance(got, torch.Tensor):
            raise CheckFailure(
                "dpo_loss returned one tensor; return (loss, margin): the notebook watches "
                "the margin"
            )
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise CheckFailure(f"dpo_loss should return (loss, margin), got {type(got).__name__}")
        loss, margin = got
        require_tensor(loss, "loss", grad=True)
        m = (pc - rc) - (pr - rr)
        want_loss, want_margin = preference.dpo_loss(pc, pr, rc, rr, beta=beta)
        compare_tensors(
            margin, want_margin, what=f"margin (beta={beta})",
            likely_bugs=[
                ("the margin is reversed: chosen minus rejected", -m),
                ("the reference model's log-probabilities are missing from the margin", pc - pr),
                ("the margin is scaled by beta; beta goes into the loss only", beta * m),
            ],
        )  # fmt: skip
        bugs = [
            (
                "beta is not applied: the loss is -logsigmoid(beta * margin)",
                -F.logsigmoid(m).mean(),
            ),
            ("the margin is reversed: chosen minus rejected", -F.logsigmoid(-beta * m).mean()),
            (
                "the reference model's log-probabilities are missing",
                -F.logsigmoid(beta * (pc - pr)).mean(),
            ),
            ("the loss is summed; average it over the pairs", -F.logsigmoid(beta * m).sum()),
            (
                "the log is missing: -log sigmoid(...), not -sigmoid(...)",
                -torch.sigmoid(beta * m).mean(),
            ),
            ("the minus sign is missing: minimise -log sigmoid", F.logsigmoid(beta * m).mean()),
        ]
        compare_tensors(loss, want_loss, what=f"loss (beta={beta})",
                        likely_bugs=bugs)  # fmt: skip
