"""Streamed weights: the export never holds the model's large weights in memory.

Why: converting holds the fp32 model whole while it is traced and lowered (4 bytes per
parameter: 33 GB for an 8B model), yet neither step reads a large weight's values.
torch.export traces with fake tensors, and litert-torch's lightweight lowering hands
each weight of 1 MB or more to MLIR as a resource constant that it passes through to
the flatbuffer untouched (nothing folds resource constants). So during a conversion
`litert.modeling.load_weights` reads only the small tensors (norms, biases) and leaves
each large parameter as allocated-but-untouched memory carrying a numbered marker in
its first 32 bytes (one page becomes resident, the rest stays the kernel's zero page).
The lowering writes the float model with the markers and zeros in place of those
weights; `fill` then finds each marker's buffer in the file and writes the checkpoint's
values there, block by block, through the same litert-torch name mapping that loading
uses (so fused q/k/v come out as loading makes them). Only one transformer block's
tensors are in memory at a time.

The float model that results is byte-identical to the one the fully loaded model gives
(tests/test_streaming.py), with one harmless exception: a large weight whose values are
all equal would have been a splat constant and is stored in full here.

What can go wrong is detected, never silent: a plugin that changes a large weight after
`load_weights` (its marker no longer matches), a weight the lowering saw in another form
than the parameter itself, or a marker missing from the file all raise `NotStreamable`,
and the conversion is done again with the weights loaded (`litert.convert`).
`LITERT_STREAM_WEIGHTS=0` turns streaming off, for measuring what it buys.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litert.baseline import CLASSIC
from litert.types import Checkpoint

ATTRIBUTE = "_litert_streamed"
"""The module attribute holding a conversion's `StreamedWeights`."""

NEARLY_ALL_FROM = 100_000_000
"""Parameters from which a decoder streams nearly all of its weights: each of its matrices
then reaches the 1 MB resource-constant size (only norms and biases are read)."""

_PREFIX = b"litert:streamed:"
_MARKER = struct.Struct("<16sQQ")  # prefix, index, zero: 32 bytes = 8 finite float32 values
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("litert_streaming", default=False)


class NotStreamable(Exception):
    """This model cannot be converted with streamed weights; convert loads them instead."""


def enabled() -> bool:
    """Conversions stream weights: not for the classic baseline, nor with LITERT_STREAM_WEIGHTS=0."""
    return not CLASSIC and os.environ.get("LITERT_STREAM_WEIGHTS", "1") != "0"


@contextlib.contextmanager
def streaming(on: bool = True) -> Iterator[None]:
    """Within this context `load_weights` streams large weights (set by `litert.convert`
    around `build_model` only: a model built elsewhere, e.g. to run it in torch, is loaded)."""
    token = _ENABLED.set(on and enabled())
    try:
        yield
    finally:
        _ENABLED.reset(token)


def active() -> bool:
    """True inside `streaming()`."""
    return _ENABLED.get()


def threshold() -> int:
    """The size in bytes from which litert-torch's lightweight lowering makes a weight a resource constant."""
    from litert_torch import _config

    return int(_config.config.resource_constant_numel_threshold)


def marker(index: int) -> bytes:
    """The 32 bytes written at the start of streamed parameter number `index`."""
    return _MARKER.pack(_PREFIX, index, 0)


def marker_index(first: bytes) -> int | None:
    """The number of the marker `first` (a buffer's first 32 bytes) starts with, else None."""
    if len(first) < _MARKER.size:
        return None
    prefix, index, zero = _MARKER.unpack(first[: _MARKER.size])
    return index if prefix == _PREFIX and zero == 0 else None


@dataclasses.dataclass
class StreamedWeights:
    """What a conversion needs to fill the float model: how to read and map the checkpoint
    again, and which parameters carry which marker."""

    checkpoint: Checkpoint
    tensor_names: Any
    tied_lm_head: bool
    unused: dict[str, str]
    config: Any
    """The litert-torch ModelConfig the blocks are mapped with."""
    split: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fused checkpoint tensors read as their parts (see `litert.modeling.load_weights`)."""
    names: list[str] = dataclasses.field(default_factory=list)
    """Streamed parameter names; a parameter's index here is its marker's number."""
    storages: dict[int, str] = dataclasses.field(default_factory=dict)
    """The data address of each streamed parameter -> its name (how the lowering is watched)."""
    used: set[str] = dataclasses.field(default_factory=set)
    """Streamed parameters the lowering turned into constants."""

    def mark(self, name: str, param: Any) -> None:
        """Write the next marker into `param` (a float32 model parameter about to be streamed)."""
        import torch

        if param.dtype != torch.float32 or not param.is_contiguous() or param.storage_offset() != 0:
            raise NotStreamable(f"parameter {name} is not a contiguous float32 tensor")
        if param.numel() * 4 < threshold():
            raise NotStreamable(f"parameter {name} is below the lowering's resource-constant size")
        index = len(self.names)
        self.names.append(name)
        self.storages[param.untyped_storage().data_ptr()] = name
        values = torch.frombuffer(bytearray(marker(index)), dtype=torch.float32)
        with torch.no_grad():
            param.view(-1)[: values.numel()].copy_(values)

    def changed(self, module: Any) -> list[str]:
        """Streamed parameters whose marker no longer matches (changed after loading)."""
        params = dict(module.named_parameters(remove_duplicate=False))
        return [
            name
            for index, name in enumerate(self.names)
            if name not in params or params[name].detach().view(-1)[:8].numpy().tobytes() != marker(index)
        ]


@contextlib.contextmanager
def watching_lowering(streamed: StreamedWeights) -> Iterator[None]:
    """While litert-torch lowers: note which streamed parameters become constants, and keep
    its in-place clamp of infinities off them (it would write every page; the checkpoint's
    values are clamped the same way when filled)."""
    from litert_torch.backend import inline_consts

    original = inline_consts._clamp_inf_values

    def clamp(tensor: Any) -> Any:
        name = streamed.storages.get(tensor.untyped_storage().data_ptr())
        if name is None:
            return original(tensor)
        if tensor.storage_offset() != 0 or not tensor.is_contiguous():
            raise NotStreamable(f"the lowering used a part of parameter {name}")
        streamed.used.add(name)
        return tensor

    inline_consts._clamp_inf_values = clamp
    try:
        yield
    finally:
        inline_consts._clamp_inf_values = original


def marked_buffers(path: Path) -> dict[int, tuple[int, int]]:
    """Marker number -> (file offset, size) of each buffer in the .tflite that starts with a marker."""
    found: dict[int, tuple[int, int]] = {}
    for index, places in marked_places(path).items():
        if len(places) > 1:
            raise NotStreamable(f"marker {index} appears twice in the float model")
        found[index] = places[0]
    return found


def marked_places(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Marker number -> (file offset, size) of every buffer in the .tflite that starts with
    it (a quantized model may hold more than one float copy of a weight)."""
    import mmap

    from ai_edge_litert import schema_py_generated as schema

    found: dict[int, list[tuple[int, int]]] = {}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            if buffer.Offset() > 1:
                start, size = buffer.Offset(), buffer.Size()
            else:
                field = buffer._tab.Offset(4)  # Buffer.data, stored inside the flatbuffer
                if not field:
                    continue
                start, size = buffer._tab.Vector(field), buffer.DataLength()
            if size < _MARKER.size:
                continue
            index = marker_index(data[start : start + _MARKER.size])
            if index is not None:
                found.setdefault(index, []).append((start, size))
        del model, buffer
    return found


def fill(path: Path, streamed: StreamedWeights, only: set[str] | None = None) -> None:
    """Write the checkpoint's values of every streamed parameter (or those named in `only`,
    the rest being already written) into the model at `path`."""

    from litert.mapping import checkpoint_state, mapped_blocks

    missing = [n for n in streamed.names if n not in streamed.used]
    if missing:
        raise NotStreamable(f"the lowering did not use parameter {missing[0]} as it is")
    found = marked_places(path) if only is not None else {i: [p] for i, p in marked_buffers(path).items()}
    wanted = [(i, n) for i, n in enumerate(streamed.names) if only is None or n in only]
    lost = [n for i, n in wanted if i not in found]
    if lost or len(found) != len(wanted):
        raise NotStreamable(f"parameter {lost[0] if lost else '?'} is not in the float model as it was marked")
    where = {streamed.names[i]: places for i, places in found.items()}
    state, loader = checkpoint_state(
        streamed.checkpoint, streamed.tensor_names, streamed.tied_lm_head, streamed.unused, split=streamed.split
    )
    with open(path, "r+b", buffering=0) as f:
        for block in mapped_blocks(streamed.config, loader, state):
            for name, tensor in block.items():
                if name not in where:
                    continue
                for start, size in where.pop(name):
                    if tensor.numel() * 4 != size:
                        raise NotStreamable(f"parameter {name} has {tensor.numel()} values for a {size}-byte buffer")
                    _write_float32(f.fileno(), tensor, start)
            del block
    if where:
        raise NotStreamable(f"the checkpoint mapping gave no values for {next(iter(where))}")


def _write_float32(fd: int, tensor: Any, offset: int, chunk: int = 1 << 24) -> None:
    """Write `tensor` as float32 at `offset`, `chunk` values at a time (a 151,936 × 4,096
    embedding would otherwise take a 2.5 GB float32 copy beside its bf16 one)."""
    import torch

    flat = tensor.reshape(-1)
    info = torch.finfo(torch.float32)
    for begin in range(0, flat.numel(), chunk):
        values = flat[begin : begin + chunk].to(torch.float32, copy=True)
        values.clamp_(min=info.min, max=info.max)  # as litert-torch's lowering does
        data, done = memoryview(values.numpy()).cast("B"), 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + begin * 4 + done)
