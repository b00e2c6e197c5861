"""Checks for part 9: the masked collate of instruction tuning, and the DPO loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import instruct
from .. import preference as reference
from ._core import CheckFailure, call, check, compare_tensors, require_tensor

__all__ = ["check_collate", "check_dpo_loss"]

IGNORE = instruct.IGNORE_INDEX

# Prompts and responses of different lengths (so padding shows), ids above any pad id, and a
# one-token response (so an off-by-one in the mask empties it).
_BATCH = [
    ([11, 12, 13], [21, 22, 23, 24]),
    ([31, 32, 33, 34, 35], [41]),
    ([51], [61, 62]),
]


def _collate_variant(batch, pad_id, *, shift=1, mask_prompt=True, mask_pad=True, extra=0,
                     left=False, label_pad=IGNORE):  # fmt: skip
    """Inputs and labels built the plain way, with knobs that reproduce the usual mistakes."""
    xs, ys = [], []
    for prompt, response in batch:
        ids = list(prompt) + list(response)
        x = ids[:-1] if shift else ids
        targets = ids[1:] if shift else ids
        n_prompt = len(prompt) - 1 + extra if shift else len(prompt) + extra
        y = [label_pad if mask_prompt and i < n_prompt else t for i, t in enumerate(targets)]
        xs.append(x)
        ys.append(y)
    T = max(len(x) for x in xs)
    X = torch.full((len(batch), T), pad_id, dtype=torch.long)
    Y = torch.full((len(batch), T), IGNORE if mask_pad else pad_id, dtype=torch.long)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if left:
            X[i, T - len(x) :], Y[i, T - len(y) :] = torch.tensor(x), torch.tensor(y)
        else:
            X[i, : len(x)], Y[i, : len(y)] = torch.tensor(x), torch.tensor(y)
    return X, Y


@check("collate", instruct.collate)
def check_collate(f):
    """Check ``collate(batch, pad_id=0) -> (x, y)``: padded inputs, labels -100 but the answer."""
    for pad_id in (0, 7):
        batch = [(list(p), list(r)) for p, r in _BATCH]
        got = call(f, batch, pad_id=pad_id, names=["batch"])
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise CheckFailure(f"collate should return (x, y), got {type(got).__name__}")
        x, y = got
        require_tensor(x, "inputs x", dtype=torch.long)
        require_tensor(y, "labels y", dtype=torch.long)
        want_x, want_y = instruct.collate(batch, pad_id)
        v = _collate_variant
        x_bugs = [
            (
                "x keeps the last token; it has no next token to predict, so x is "
                "prompt + response without its last id",
                v(batch, pad_id, shift=0)[0],
            ),
            ("the padding goes on the left; pad on the right", v(batch, pad_id, left=True)[0]),
        ]
        if pad_id != 0:
            x_bugs.append(("x is padded with 0; pad with the pad_id given", v(batch, 0)[0]))
        compare_tensors(x, want_x, what=f"inputs x (pad_id={pad_id})", atol=0, rtol=0,
                        likely_bugs=x_bugs)  # fmt: skip
        y_bugs = [
            (
                (
                    "the labels are not shifted: y[i] is the token after x[i]",
                    "position i predicts ids[i + 1]: the labels are the same sequence "
                    "moved one step left",
                ),
                v(batch, pad_id, shift=0)[1][:, : want_y.size(1)],
            ),
            (
                "the prompt is not masked: its labels should be -100, so that the loss "
                "counts only the answer",
                v(batch, pad_id, mask_prompt=False)[1],
            ),
            (
                "the padding's labels should be -100 too: the model must not learn to "
                "predict padding",
                v(batch, pad_id, mask_pad=False)[1],
            ),
            (
                "one label too many is masked: the first answer token, predicted from "
                "the prompt's last position, must count",
                v(batch, pad_id, extra=1)[1],
            ),
            (
                "masked labels are 0; use -100, the index cross_entropy ignores",
                v(batch, pad_id, label_pad=0, mask_pad=True)[1],
            ),
            (
                "the padding goes on the left; pad on the right",
                v(batch, pad_id, left=True)[1],
            ),
        ]
        compare_tensors(y, want_y, what=f"labels y (pad_id={pad_id})", atol=0, rtol=0,
                        likely_bugs=y_bugs)  # fmt: skip


def _dpo_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # Log-probabilities (negative), with policy and reference apart, chosen and rejected apart.
    pc, pr, rc, rr = (-(torch.rand(6, generator=g) * 8 + 1) for _ in range(4))
    return pc.requires_grad_(), pr.requires_grad_(), rc, rr


@check("dpo_loss", reference.dpo_loss)
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
        want_loss, want_margin = reference.dpo_loss(pc, pr, rc, rr, beta=beta)
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
