"""The check machinery: one line per outcome, the likely bug named, the right fallback."""

import pytest
import torch

from gpt2course.checks import CheckFailure, compare_tensors, compare_values, run_check


def ref(x):
    return x * 2


def _test(f):
    x = torch.arange(6.0).view(2, 3)
    compare_tensors(
        f(x),
        ref(x),
        what="doubled tensor",
        likely_bugs=[("did you add instead of multiply?", x + 2), ("transposed?", ref(x).T)],
    )


def test_pass_returns_the_learners_function(capsys):
    def mine(x):
        return x + x

    assert run_check("double", mine, ref, _test) is mine
    assert capsys.readouterr().out.startswith("✓ double")


def test_not_done_falls_back_quietly(capsys):
    def stub(x):
        raise NotImplementedError

    assert run_check("double", stub, ref, _test) is ref
    assert "not done yet" in capsys.readouterr().out


def test_wrong_answer_names_the_bug_and_falls_back(capsys):
    assert run_check("double", lambda x: x + 2, ref, _test) is ref
    out = capsys.readouterr().out
    assert "✗ double" in out and "did you add instead of multiply?" in out
    assert "max error" in out and "% of values wrong" in out


def test_wrong_shape_is_reported(capsys):
    run_check("double", lambda x: (x * 2).T, ref, _test)
    out = capsys.readouterr().out
    assert "shape (3, 2), expected (2, 3)" in out and "transposed?" in out


def test_crash_is_reported_not_raised(capsys):
    run_check("double", lambda x: x.nope(), ref, _test)
    assert "your code raised AttributeError" in capsys.readouterr().out


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("GPT2COURSE_STRICT_CHECKS", "1")
    with pytest.raises(CheckFailure, match="add instead"):
        run_check("double", lambda x: x + 2, ref, _test)


def test_nan_and_non_tensor():
    with pytest.raises(CheckFailure, match="NaN"):
        compare_tensors(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(CheckFailure, match="should be a tensor"):
        compare_tensors([1.0], torch.tensor([1.0]))


def test_compare_values_names_the_bug():
    with pytest.raises(CheckFailure, match="off by one"):
        compare_values(3, 4, likely_bugs=[("off by one?", 3)])
    compare_values({"a": 1}, {"a": 1})


def test_softmax_warmup_names_the_overflow_and_the_wrong_dim(capsys):
    from gpt2course.checks import check_softmax

    def no_max(x):
        e = torch.exp(x)
        return e / e.sum(dim=-1, keepdim=True)

    def wrong_dim(x):
        e = torch.exp(x - x.amax(dim=0, keepdim=True))
        return e / e.sum(dim=0, keepdim=True)

    assert check_softmax(no_max) is not no_max
    assert "subtract each row's max" in capsys.readouterr().out
    check_softmax(wrong_dim)
    assert "wrong dimension" in capsys.readouterr().out
    good = lambda x: torch.softmax(x, -1)  # noqa: E731
    assert check_softmax(good) is good
