"""Device and dtype choice, with the hardware mocked."""

import pytest
import torch

from gpt2course import device


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv("GPT2COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_cpu_when_nothing_else(no_gpu):
    assert device.pick_device() == torch.device("cpu")
    assert device.pick_dtype("cpu") == torch.float32


def test_mps_before_cpu(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.pick_device().type == "mps"


def test_cuda_first(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.pick_device().type == "cuda"


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((7, 5), torch.float16),
        ((8, 0), torch.bfloat16),
        ((9, 0), torch.bfloat16),
        ((6, 1), torch.float16),
    ],
)
def test_cuda_dtype_follows_real_bf16_support(monkeypatch, capability, expected):
    # A T4 (7.5) says yes to is_bf16_supported() but only emulates it.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    assert device.pick_dtype("cuda") == expected


def test_explicit_cuda_without_gpu_says_what_to_do(no_gpu):
    with pytest.raises(RuntimeError, match="Change runtime type"):
        device.pick_device("cuda")


def test_env_override(no_gpu, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_DEVICE", "cpu")
    assert device.pick_device() == torch.device("cpu")


def test_colab_detection(monkeypatch):
    import sys
    import types

    assert not device.in_colab()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert device.in_colab()


def test_quick_mode(monkeypatch):
    monkeypatch.setenv("GPT2COURSE_QUICK", "1")
    assert device.quick_mode()
    monkeypatch.setenv("GPT2COURSE_QUICK", "0")
    assert not device.quick_mode()
