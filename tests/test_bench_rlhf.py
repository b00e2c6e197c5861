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
    # The orderings (docs/benchmarks.md, `## rlhf`; three seeds at quick size, RL
    # +0.065 to +0.095 over the tuned model and +0.01 to +0.05 over DPO): a reward model
    # well above chance; RL with the penalty above the tuned model and DPO; and Goodhart:
    # without the penalty the reward model's score is higher, the rater's lower, and the
    # policy much further from the tuned model.
    assert r["rm_accuracy"] >= 0.75, r
    assert r["rl_true"] >= r["sft_true"] + 0.03 and r["rl_true"] >= r["dpo_true"], r
    assert r["nokl_reward"] > r["rl_reward"] and r["nokl_true"] < r["rl_true"] - 0.05, r
    assert r["nokl_kl"] > 2 * r["rl_kl"], r
