"""The device check's parts run end to end on the CPU (--dry, a tiny shape), as CI runs them."""

from __future__ import annotations

import pytest

from gpt2course.workshop.bench import device, generate


@pytest.mark.parametrize("part", ["fp16"])
def test_dry_part_runs_and_reports(part, capsys):
    assert device.main([part, "--dry"]) == 0
    out = capsys.readouterr().out
    assert "all finite" in out and "same ids" in out


def test_bandwidth_bound_is_unknown_off_the_gpu():
    import torch

    assert generate.bandwidth_gbs(torch.device("cpu")) is None


def test_decoding_at_a_tiny_shape_runs_and_every_row_agrees(capsys):
    argv = ["--model", "tiny", "--new-tokens", "4", "--repeats", "1", "--skip-no-cache"]
    assert generate.main(argv) == 0
    assert "NO" not in capsys.readouterr().out.split("same ids", 1)[1]
