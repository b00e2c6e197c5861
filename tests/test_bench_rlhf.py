"""`bench rlhf --quick`: the miniature's orderings, the ones issue 23's done-when asks of it."""

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
    assert r["rm_accuracy"] >= 0.85, r
    assert r["rl_true"] >= r["sft_true"] + 0.03 and r["rl_true"] >= r["dpo_true"], r
    # Goodhart: without the penalty, the reward model's score is higher and the rater's lower.
    assert r["nokl_reward"] > r["rl_reward"] and r["nokl_true"] < r["rl_true"], r
    assert r["nokl_kl"] > r["rl_kl"], r
