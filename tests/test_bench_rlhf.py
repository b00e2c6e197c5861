"""`bench rlhf --quick`: the miniature's orderings that hold at quick size."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from gpt2course.workshop.bench import rlhf as bench


@pytest.mark.slow
def test_quick_run_shows_the_orderings():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(["--quick"]) == 0
    r = json.loads(out.getvalue().strip().splitlines()[-1])
    # What the quick run shows robustly (docs/benchmarks.md, `## rlhf`): a reward model well
    # above chance, and Goodhart: without the penalty the reward model's score is higher,
    # the rater's lower, and the policy much further from the tuned model. (RL with the
    # penalty against the tuned model and against DPO is within the quick run's noise:
    # 30 steps of a 2 x 64 model, one seed's samples move it by a few hundredths.)
    assert r["rm_accuracy"] >= 0.75, r
    assert r["nokl_reward"] > r["rl_reward"] and r["nokl_true"] < r["rl_true"] - 0.05, r
    assert r["nokl_kl"] > 2 * r["rl_kl"], r
