"""A .safetensors reader that needs little memory, and an atomic writer."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
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
        size = self.path.stat().st_size
        what = f"{self.path} is not a valid .safetensors file"
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{what}: it is only {size} bytes (empty or truncated?)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100_000_000):
                raise CheckpointError(
                    f"{what}: its header claims {n} bytes but the file has {size} (corrupt or truncated)"
                )
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CheckpointError(
                    f"{what}: its header is not JSON ({e}); the file is corrupt"
                ) from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{what}: its header is not a JSON object")
        header.pop("__metadata__", None)
        self.data_start = 8 + n
        entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key, e in header.items():
            try:
                dtype = _DTYPES[e["dtype"]]
                shape = tuple(int(s) for s in e["shape"])
                begin, end = (int(x) for x in e["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{what}: bad header entry for {key!r}: {e!r}") from None
            nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            if end - begin != nbytes or begin < 0:
                raise CheckpointError(
                    f"{what}: tensor {key!r} has {end - begin} bytes, its shape needs {nbytes}"
                )
            entries[key] = (dtype, shape, begin, end)
        # In the order of the file, so that reading them one after another is sequential.
        self.entries = dict(sorted(entries.items(), key=lambda kv: kv[1][2:]))
        end_max = max((e[3] for e in entries.values()), default=0)
        if self.data_start + end_max > size:
            raise CheckpointError(
                f"{self.path} is truncated: its tensors need {self.data_start + end_max} bytes but the "
                f"file has {size}. Download it again (an interrupted download?)."
            )
        # As safetensors itself checks: the tensors tile the data exactly, in order, so no
        # two share bytes (one would silently read the other's) and nothing is unaccounted.
        at = 0
        for key, (_, _, begin, end) in self.entries.items():
            if begin != at:
                why = "overlaps the tensor before it" if begin < at else "leaves a gap before it"
                raise CheckpointError(f"{what}: tensor {key!r} at bytes {begin}-{end} {why}")
            at = end
        if self.data_start + at != size:
            raise CheckpointError(
                f"{what}: {size - self.data_start - at} bytes after the last tensor belong to none"
            )

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


def write_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write tensors to a .safetensors file atomically (temp file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata=dict(metadata or {"format": "pt"}),
        )
    return path
