"""Reading a checkpoint's safetensors weights: which files, are they whole, load them.

Public for plugins: `load_state_dict(checkpoint)` is the loader a family plugin hands
to litert-torch. Only safetensors are read; pickle weights are never unpickled here.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litert.errors import LitertError
from litert.types import Checkpoint

if TYPE_CHECKING:
    import torch

INDEX_FILE = "model.safetensors.index.json"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def safetensors_files(checkpoint: Checkpoint) -> list[Path]:
    """The safetensors files holding the model, from the shard index when there is one.

    With an index, only the files it names are read (a directory may also hold e.g. a
    consolidated copy that would double every tensor).
    """
    root = checkpoint.path
    index_path = root / INDEX_FILE
    if index_path.is_file():
        index = checkpoint.read_json(INDEX_FILE) or {}
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise LitertError(f"{index_path} has no weight_map", "re-download the checkpoint")
        names = sorted(set(weight_map.values()))
        files = []
        for name in names:
            path = (root / name).resolve()
            if root.resolve() not in path.parents:
                raise LitertError(
                    f"{index_path} names a file outside the checkpoint: {name!r}", "do not use this checkpoint"
                )
            if not path.is_file():
                raise LitertError(
                    f"shard {name} listed in {INDEX_FILE} is missing from {checkpoint.source or root}",
                    "re-download the checkpoint (all shards)",
                )
            files.append(path)
        return files
    files = sorted(root.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p for p in root.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles and checkpoint.allow_pickle:
        return pickles
    if pickles:
        raise LitertError(
            f"{checkpoint.source or root} has only pickle weights ({', '.join(p.name for p in pickles[:3])}); "
            "litert does not load pickles by default, since unpickling can run arbitrary code",
            "if you trust the checkpoint, pass --allow-pickle (tensors are then loaded with "
            "torch.load(weights_only=True))",
        )
    raise LitertError(
        f"{checkpoint.source or root} has no weights (*.safetensors)",
        "pass a complete checkpoint directory",
    )


def read_header(path: Path) -> dict[str, Any]:
    """Parse a safetensors header and check that the file holds every byte it announces."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("file shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > min(size - 8, 100 * 1024 * 1024):
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LitertError(
            f"{path.name} is not a readable safetensors file: {exc}", "re-download the checkpoint"
        ) from exc
    if not isinstance(header, dict):
        raise LitertError(f"{path.name} has a malformed safetensors header", "re-download the checkpoint")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise LitertError(f"{path.name} has a malformed entry for {key!r}", "re-download the checkpoint") from exc
    if 8 + n + end > size:
        raise LitertError(
            f"{path.name} is truncated: it announces {8 + n + end:,} bytes but has {size:,}",
            "the download was interrupted; re-download the checkpoint",
        )
    return header


_EXPONENT_ALL_ONES = {  # safetensors dtype -> (unsigned view, exponent mask): all ones is NaN or ±inf
    "F32": ("<u4", 0x7F800000),
    "BF16": ("<u2", 0x7F80),
    "F16": ("<u2", 0x7C00),
    "F64": ("<u8", 0x7FF0000000000000),
}


def check_finite(path: Path, chunk: int = 1 << 24) -> None:
    """Refuse a safetensors file holding a NaN or an infinite weight, naming the tensor.

    Reads the raw bits (memory-mapped, a bounded chunk at a time): a value whose exponent
    bits are all ones is NaN or ±inf in every IEEE format. Such a checkpoint converts into a
    bundle that answers nothing, after minutes; here it is refused in seconds."""
    import numpy as np

    header = read_header(path)
    start = 8 + int.from_bytes(path.open("rb").read(8), "little")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        for name, info in header.items():
            if name == "__metadata__" or info.get("dtype") not in _EXPONENT_ALL_ONES:
                continue
            view, mask = _EXPONENT_ALL_ONES[info["dtype"]]
            begin, end = (start + int(o) for o in info["data_offsets"])
            values = data[begin:end].view(view)
            for i in range(0, len(values), chunk):
                if np.any((values[i : i + chunk] & mask) == mask):
                    raise LitertError(
                        f"{path.name}: tensor {name} holds NaN or infinite values",
                        "the checkpoint is damaged (a diverged training run or a bad merge); "
                        "use another revision or re-export it",
                    )
    finally:
        del data


def check_weights(checkpoint: Checkpoint) -> dict[str, Path]:
    """Validate every weights file cheaply (headers only) and map tensor names to files."""
    from litert import preflight

    where: dict[str, Path] = {}
    shapes: dict[str, list[int]] = {}
    for path in safetensors_files(checkpoint):
        if path.suffix in _PICKLE_SUFFIXES:
            continue  # allowed pickles are checked when loaded (weights_only)
        for key, info in read_header(path).items():
            if key == "__metadata__":
                continue
            preflight.check_weight_header(key, info, path.name)
            shapes[key] = [int(d) for d in info.get("shape", [])]
            if key in where:
                raise LitertError(
                    f"tensor {key} appears in both {where[key].name} and {path.name}",
                    "remove the stray file from the checkpoint directory",
                )
            where[key] = path
    preflight.check_shapes_against_config(checkpoint, shapes)
    return where


def load_state_dict(checkpoint: Checkpoint, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """Load every tensor of the checkpoint, floating-point ones converted to `dtype`.

    All at once: for full-size models `LazyStateDict` is the one that fits in memory.
    """
    import torch
    from safetensors import safe_open

    target = getattr(torch, dtype)
    state: dict[str, torch.Tensor] = {}
    for path in safetensors_files(checkpoint):
        if path.suffix in _PICKLE_SUFFIXES:
            state.update(_load_pickle(path, target))
            continue
        read_header(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    tensor = f.get_tensor(key)
                    state[key] = tensor.to(target) if tensor.is_floating_point() else tensor
        except LitertError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise LitertError(f"cannot read {path.name}: {exc}", "re-download the checkpoint") from exc
    return state


_SAFETENSORS_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


class LazyStateDict(MutableMapping):
    """Tensor name -> tensor in its stored dtype, read from the file when taken.

    Loading a full-size model block by block through this holds one block's tensors at
    a time, read with plain reads into memory that is freed once copied into the model,
    instead of the whole checkpoint (a memory-mapped checkpoint counts every page it has
    touched in the process's resident set: 3.4 GB for Qwen3-1.7B, 8 GB for Qwen3-4B).

    With `meta_from`, a tensor whose float32 copy would take at least that many bytes
    is not read: it comes back as a tensor on torch's "meta" device (shape and dtype
    only), for a conversion that streams its large weights (litert.streaming).
    """

    def __init__(self, checkpoint: Checkpoint, meta_from: int | None = None) -> None:
        self._where: dict[str, tuple[Path, int, dict[str, Any]]] = {}
        self._eager: dict[str, Any] = {}
        self._meta_from = meta_from
        for path in safetensors_files(checkpoint):
            if path.suffix in _PICKLE_SUFFIXES:
                self._eager.update(_load_pickle(path, None))
                continue
            header = read_header(path)
            with path.open("rb") as f:
                start = 8 + struct.unpack("<Q", f.read(8))[0]
            for key, info in header.items():
                if key != "__metadata__":
                    self._where[key] = (path, start, info)

    def __getitem__(self, key: str) -> Any:
        if key in self._eager:
            return self._eager[key]
        import torch

        path, start, info = self._where[key]
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype", ""))
        if dtype is None:
            raise LitertError(
                f"{path.name}: tensor {key} has unsupported dtype {info.get('dtype')!r}",
                "use a checkpoint saved in bf16, fp16 or fp32",
            )
        begin, end = (int(x) for x in info["data_offsets"])
        shape = [int(d) for d in info.get("shape", [])]
        if self._meta_from is not None and math.prod(shape) * 4 >= self._meta_from:
            return torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        data = bytearray(end - begin)
        with path.open("rb", buffering=0) as f:
            view, done = memoryview(data), 0
            while done < len(data):
                n = os.preadv(f.fileno(), [view[done:]], start + begin + done)
                if n <= 0:
                    raise LitertError(f"{path.name} ends inside tensor {key}", "re-download the checkpoint")
                done += n
        if not data:
            return torch.empty(shape, dtype=getattr(torch, dtype))
        return torch.frombuffer(data, dtype=getattr(torch, dtype)).reshape(shape)

    def __contains__(self, key: object) -> bool:
        return key in self._where or key in self._eager

    def __setitem__(self, key: str, value: Any) -> None:
        self._eager[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self._eager:
            del self._eager[key]
        else:
            del self._where[key]

    def __iter__(self) -> Iterator[str]:
        yield from list(self._where)
        yield from list(self._eager)

    def __len__(self) -> int:
        return len(self._where) + len(self._eager)


def _load_pickle(path: Path, target: Any) -> dict[str, Any]:
    """A pickle state dict, loaded with weights_only=True (no arbitrary code); only with --allow-pickle."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise LitertError(
            f"{path.name} cannot be loaded safely (weights_only): {exc}", "use a checkpoint with safetensors weights"
        ) from exc
    if not isinstance(state, dict):
        raise LitertError(f"{path.name} does not hold a state dict", "use a checkpoint with safetensors weights")
    return {k: (v.to(target) if target and v.is_floating_point() else v) for k, v in state.items()}


class SplitState(MutableMapping):
    """A state dict in which fused tensors (Phi-3's qkv_proj, gate_up_proj) appear as their
    parts, split along the first dimension when taken; the fused tensor is read per part.

    `split` maps a fused name pattern with "{}" for the layer index (no ".weight") to its
    parts: ((part pattern, rows), ...). Works over a plain dict or a `LazyStateDict`, meta
    tensors included (a part of a tensor known by shape only is known by shape only).
    """

    def __init__(self, base: MutableMapping, split: Mapping[str, tuple[tuple[str, int], ...]]) -> None:
        import re

        self._base = base
        self._parts: dict[str, tuple[str, int, int]] = {}
        self._left: dict[str, int] = {}
        self._rows: dict[str, int] = {}
        for fused, parts in split.items():
            pattern = re.compile(re.escape(fused).replace(r"\{\}", r"(\d+)") + r"\.(weight|bias)")
            for key in list(base):
                m = pattern.fullmatch(key)
                if not m:
                    continue
                offset = 0
                for name, rows in parts:
                    self._parts[f"{name.format(m.group(1))}.{m.group(2)}"] = (key, offset, rows)
                    offset += rows
                self._left[key] = len(parts)
                self._rows[key] = offset

    def __getitem__(self, key: str) -> Any:
        if key in self._parts:
            fused, offset, rows = self._parts[key]
            tensor = self._base[fused]
            if tensor.shape[0] != self._rows[fused]:
                raise RuntimeError(
                    f"size mismatch for {fused}: {tuple(tensor.shape)} does not split into the model's parts"
                )
            return tensor[offset : offset + rows].clone()
        return self._base[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._base[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self._parts:
            del self._base[key]
            return
        fused, _, _ = self._parts.pop(key)
        self._left[fused] -= 1
        if self._left[fused] == 0:
            del self._base[fused]

    def __contains__(self, key: object) -> bool:
        return key in self._parts or (key in self._base and key not in self._left)

    def __iter__(self) -> Iterator[str]:
        yield from list(self._parts)
        yield from [k for k in list(self._base) if k not in self._left]

    def __len__(self) -> int:
        return sum(1 for _ in self)
