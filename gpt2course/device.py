"""Which device and dtype to use, and where the course is running."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda if there is a GPU, else Apple's mps, else cpu; ``prefer`` (or GPT2COURSE_DEVICE) overrides."""
    prefer = prefer or os.environ.get("GPT2COURSE_DEVICE") or None
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was asked for but torch sees no GPU; in Colab choose "
                "Runtime → Change runtime type → T4 GPU, or leave the device unset to use the CPU"
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) of this process under torchrun; (0, 0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size()
    return 0, 0, 1


def has_native_bf16(device: torch.device | str) -> bool:
    """Whether the device computes in bf16 natively (Ampere or newer), not by emulation.

    A T4 (compute capability 7.5) answers yes to ``torch.cuda.is_bf16_supported()`` but only
    emulates bf16, slowly; its half precision is fp16.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def pick_dtype(device: torch.device | str) -> torch.dtype:
    """The fastest dtype that the device really supports for inference."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def in_colab() -> bool:
    """Whether this runs inside Google Colab."""
    return "google.colab" in sys.modules


def quick_mode() -> bool:
    """Whether to run with the small, fast settings (nbval and CI set GPT2COURSE_QUICK=1)."""
    return os.environ.get("GPT2COURSE_QUICK", "") not in ("", "0")


def progress_bars() -> bool:
    """Whether to draw progress bars: yes, except where the outputs are kept (the notebook
    builder and nbval set GPT2COURSE_PROGRESS=0, so no bar's fragments land in a notebook)."""
    return os.environ.get("GPT2COURSE_PROGRESS", "") != "0"
