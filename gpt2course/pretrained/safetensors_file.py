"""A .safetensors reader that needs little memory, and an atomic writer."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..files import CheckpointError, atomic_path

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    """A .safetensors file read one tensor at a time with plain reads.

    Not memory-mapped on purpose: every page of a mapped file that is touched counts in the
    process's memory until it is unmapped, which would double the peak for a big model.
    The header is checked against the file's size, so a truncated download is caught up front.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"no such checkpoint file: {self.path}")
        # safetensors' own checks: the header's length and JSON, each tensor's byte count
        # against its shape, and the tensors tiling the data exactly, in order, so no two
        # share bytes (one would silently read the other's) and nothing is unaccounted.
        try:
            with safe_open(self.path, "pt"):
                pass
        except SafetensorError as e:
            why = str(e).removeprefix("Error while deserializing header: ")
            squashed = why.lower().replace(" ", "")  # older safetensors: "InvalidOffset", ...
            if "invalidoffset" in squashed:
                why += ": it overlaps another tensor or leaves a gap before it"
            what = (  # the file's size is not what its header says: mostly a cut download
                "is truncated, or longer than its header says"
                if "incomplete" in squashed
                else "is not a valid .safetensors file (corrupt or truncated?)"
            )
            raise CheckpointError(
                f"{self.path} {what}: {why}. Download it again (an interrupted download?)"
            ) from None
        with open(self.path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        self.data_start = 8 + n
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        # In the order of the file, so that reading them one after another is sequential.
        for key, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
            if e["dtype"] not in _DTYPES:
                raise CheckpointError(
                    f"{self.path}: tensor {key!r} is {e['dtype']}, a dtype not read here"
                )
            self.entries[key] = (_DTYPES[e["dtype"]], tuple(e["shape"]), *e["data_offsets"])

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape, by key, in the order of the file."""
        return {k: e[1] for k, e in self.entries.items()}

    def keys_in_file_order(self) -> list[str]:
        """The keys sorted by where their bytes are, so reading is sequential."""
        return list(self.entries)

    def read(self, key: str) -> torch.Tensor:
        """One tensor, freshly allocated on the CPU."""
        dtype, shape, begin, end = self.entries[key]
        buf = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(buf) != len(buf):
                raise CheckpointError(f"{self.path} ended early while reading {key!r}: truncated?")
        if not buf:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(shape)


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write tensors to a .safetensors file atomically (temp file, then rename)."""
    with atomic_path(path) as tmp:
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        save_file(tensors, str(tmp), metadata={"format": "pt"})
