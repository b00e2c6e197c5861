"""The device check's parts run end to end on the CPU (--dry), as CI runs them."""

from __future__ import annotations

import pytest

from gpt2course.workshop.bench import device


@pytest.mark.parametrize("part", ["fp16"])
def test_dry_part_runs_and_reports(part, capsys):
    assert device.main([part, "--dry"]) == 0
    out = capsys.readouterr().out
    assert "all finite" in out and "same ids" in out


def test_bandwidth_bound_is_unknown_off_the_gpu():
    import torch

    assert device.bandwidth_gbs(torch.device("cpu")) is None
