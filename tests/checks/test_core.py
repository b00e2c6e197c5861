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


# --- the machinery of issue 15 ------------------------------------------------------------


def test_rerunning_a_check_on_its_own_fallback_says_run_your_cell_again(capsys):
    from gpt2course.checks import check_merge

    def merge(ids, pair, new_id):
        raise NotImplementedError

    merge = check_merge(merge)
    capsys.readouterr()
    assert check_merge(merge) is merge
    out = capsys.readouterr().out
    assert out.startswith("↺ merge") and "Run the cell that defines merge again" in out
    assert "✓" not in out


def test_a_crash_in_the_learners_code_quotes_their_line_and_says_what_it_means(capsys):
    def mine(x, mask=None):
        if x:  # a tensor in an if
            return x
        return x

    run_check("double", mine, ref, _test)
    out = capsys.readouterr().out
    assert "your code raised RuntimeError" in out and "`if x:  # a tensor in an if`" in out
    assert "is not None" in out


def test_a_crash_in_the_checks_own_code_is_not_blamed_on_the_learner(capsys, monkeypatch):
    def buggy_test(f):
        f(torch.ones(2))
        return (1, 2) < 3  # the check's own bug: comparing a tuple with an int

    run_check("double", lambda x: x * 2, ref, buggy_test)
    out = capsys.readouterr().out
    assert "the check itself crashed" in out and "not in your code" in out
    assert "your code raised" not in out
    monkeypatch.setenv("GPT2COURSE_STRICT_CHECKS", "1")
    from gpt2course.checks import CheckBug

    with pytest.raises(CheckBug):
        run_check("double", lambda x: x * 2, ref, buggy_test)


def test_the_closest_likely_bug_is_named_not_the_first():
    got = torch.tensor([1.0, 2.0, 3.0])
    loose = got + 5e-6  # within tolerance, but further than the exact match
    with pytest.raises(CheckFailure, match="the exact one"):
        compare_tensors(
            got,
            torch.zeros(3),
            likely_bugs=[("a loose one", loose), ("the exact one", got.clone())],
        )


def test_hint_levels_give_a_bigger_step_on_request(capsys):
    def test(f):
        compare_tensors(
            f(torch.ones(2)), torch.ones(2) * 2, likely_bugs=[(("names it", "a bigger step"), torch.ones(2) + 2)]
        )  # fmt: skip

    run_check("double", lambda x: x + 2, ref, test)
    first = capsys.readouterr().out
    assert "names it" in first and "hint=2" in first and "bigger step" not in first
    run_check("double", lambda x: x + 2, ref, test, hint=2)
    assert "a bigger step" in capsys.readouterr().out


def test_an_exercises_own_hints_come_one_level_at_a_time(capsys):
    # The notebook's # HINT: is level 1; the check holds the bigger steps.
    steps = ("the step after the notebook's", "a bigger one")

    def stub(x):
        raise NotImplementedError

    def test(f):
        compare_tensors(f(torch.ones(2)), torch.ones(2) * 2)

    run_check("double", stub, ref, test, hints=steps)
    out = capsys.readouterr().out
    assert "not done yet" in out and "hint=2" in out and "step after" not in out
    run_check("double", stub, ref, test, hint=2, hints=steps)
    out = capsys.readouterr().out
    assert "hint 2 for double: the step after the notebook's (still stuck? hint=3)" in out
    run_check("double", lambda x: x + 5, ref, test, hint=3, hints=steps)
    out = capsys.readouterr().out
    assert "✗ double" in out and "hint 3 for double: a bigger one" in out and "hint=4" not in out
    run_check("double", lambda x: x + 5, ref, test, hint=9, hints=steps)
    assert "a bigger one" in capsys.readouterr().out  # past the last level: the last
    run_check("double", lambda x: x * 2, ref, test, hint=2, hints=steps)
    out = capsys.readouterr().out
    assert "✓" in out and "hint" not in out  # a right answer needs none


def test_outputs_are_never_cast_before_judging():
    with pytest.raises(CheckFailure, match="dtype torch.float32, expected torch.int64"):
        compare_tensors(torch.tensor([1.0, 2.0]), torch.tensor([1, 2]))
    with pytest.raises(CheckFailure, match="Python number has no graph"):
        from gpt2course.checks import require_tensor

        require_tensor(1.5, "loss", grad=True)


def test_in_place_changes_to_inputs_are_refused():
    from gpt2course.checks import call

    x = torch.ones(3)
    with pytest.raises(CheckFailure, match="`x` in place"):
        call(lambda t: t.mul_(2), x, names=["x"])
    assert call(lambda t: t * 2, torch.ones(3), names=["x"]).sum() == 6


def test_every_check_takes_a_hint_level():
    import inspect

    from gpt2course import checks

    names = [n for n in dir(checks) if n.startswith("check_")]
    assert len(names) >= 27
    for n in names:
        assert "hint" in inspect.signature(getattr(checks, n)).parameters, n
