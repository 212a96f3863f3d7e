"""The float model -> the quantized one, through ai-edge-quantizer with the chosen recipe.

Streamed weights (litert.streaming) are still markers in the float model when a min-max
recipe (dynamic_int8, weight_only_int8, the int4 ones) quantizes it: the quantizer's two
steps that read a weight's values — its min/max, then its quantized values — are handed
the checkpoint's values for that weight, read when the quantizer reaches it, and the
quantized values go into a file that the quantizer reads back as it writes the model.
Why: filling the float model first and quantizing it after held every quantized weight
until the end (12.1 GB for Qwen3-8B) and wrote, filled and read back a float file of 4
bytes per parameter. Here one weight is in memory at a time, in its stored type, and a
part of its rows at a time in float32 exactly as the filled model would have handed it to
the quantizer (cast and clamped as the lowering clamps), through the quantizer's own
functions on two threads: the model comes out byte for byte as
fill-then-quantize makes it (tests/test_quantizing.py). Weights the recipe leaves float
keep their markers through the quantizer and are filled in its output afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from litert import streaming
from litert.baseline import CLASSIC
from litert.lowering import Lowered, share_quantization_parameters


def quantize(lowered: Lowered, workdir: Path) -> Path:
    """Apply the recipe to the float model on disk; return the final .tflite.

    Reading from the file (not from bytes in memory) after the torch model is gone keeps
    this step below the export's peak; with streamed weights and a min-max recipe, the
    weights come from the checkpoint instead (`from_checkpoint`).
    """
    if lowered.recipe is None:
        return lowered.path
    path = workdir / "model.tflite"
    if CLASSIC:  # upstream's call: the quantized model returned as one bytearray, then written
        from litert_torch.quantize import translate_recipe

        path.write_bytes(translate_recipe.quantize_model(str(lowered.path), lowered.recipe))
        lowered.path.unlink()
        return path
    streamed = lowered.streamed if quantizes_from_checkpoint(lowered.recipe) else None
    if streamed is not None:
        try:
            with from_checkpoint(streamed, workdir) as served:
                _run_quantizer(lowered.path, lowered.recipe, path, served.mappings)
            # Weights the recipe leaves float (or a float copy the quantizer made of a weight
            # it also quantized) kept their markers: filled in the quantized model.
            left = {streamed.names[i] for i in streaming.marked_places(path)}
            lost = [n for i, n in enumerate(streamed.names) if i not in served.markers and n not in left]
            if lost:
                raise streaming.NotStreamable(f"the quantizer neither quantized nor kept parameter {lost[0]}")
            if left:
                streaming.fill(path, streamed, only=left)
        except Exception as exc:  # the quantizer wraps what its steps raise
            if not _not_streamable(exc):
                raise
            streamed = None  # the float model is still there: filled and quantized as it is
    if streamed is None:
        if lowered.streamed is not None:
            streaming.fill(lowered.path, lowered.streamed)
        _run_quantizer(lowered.path, lowered.recipe, path, [])
    lowered.path.unlink()
    share_quantization_parameters(path)
    return path


def _not_streamable(exc: BaseException | None) -> bool:
    """Whether `exc` is, or was raised from, `NotStreamable`."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, streaming.NotStreamable):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def enabled() -> bool:
    """Streamed weights are quantized from the checkpoint unless LITERT_QUANTIZE_FROM_CHECKPOINT=0
    (the float model filled, then quantized: for measuring what it buys)."""
    import os

    return not CLASSIC and os.environ.get("LITERT_QUANTIZE_FROM_CHECKPOINT", "1") != "0"


def quantizes_from_checkpoint(recipe: Any) -> bool:
    """Whether every entry of an ai-edge-quantizer recipe is min-max uniform quantization,
    whose reads of a weight's values `from_checkpoint` answers (float casting, fp16, reads
    them another way)."""
    from ai_edge_quantizer import algorithm_manager

    minmax = algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT
    entries = recipe if isinstance(recipe, list) else []
    return bool(entries) and all(e.get("algorithm_key") in (minmax, minmax.value) for e in entries)


def _run_quantizer(float_path: Path, recipe: Any, path: Path, mappings: list[Any]) -> None:
    """ai-edge-quantizer on the float model mapped read-only, serializing into a mapped file.

    Its own copy-on-write mapping counts the whole file against the kernel's overcommit
    limit, and for a file larger than the machine's memory (33 GB for an 8B model) it falls
    back to reading it all into memory; and it serializes into a memory-mapped file as it
    packs each weight instead of building the whole quantized model in memory first. Pages
    read or written through any of these mappings are unmapped every second (`_unmapping`):
    the data stays in the file and the page cache, out of the process's resident set.
    """
    import gc

    from ai_edge_quantizer import quantizer

    with open(float_path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            output: list[Any] = []
            with _allocated_output(output), _unmapping(lambda: [data, *output, *mappings]):
                quantizer.Quantizer(memoryview(data), recipe).quantize(serialize_to_path=str(path))
            output.clear()
        finally:
            gc.collect()  # the quantizer's views into the mapping
            with contextlib.suppress(BufferError):  # one still held: unmapped when it goes
                data.close()


@dataclasses.dataclass
class Served:
    """What `from_checkpoint` answered: the markers it quantized, and the mappings of its file."""

    markers: set[int] = dataclasses.field(default_factory=set)
    mappings: list[Any] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def from_checkpoint(streamed: streaming.StreamedWeights, workdir: Path) -> Iterator[Served]:
    """Within this context, the quantizer's min/max and quantized values of a streamed weight
    (a float model buffer that starts with a marker) are computed from the checkpoint.

    The quantized values are written to a file in `workdir` and handed back mapped
    read-only, so the quantizer holds mappings, not memory, until it serializes.
    """
    import os

    import numpy as np
    from ai_edge_quantizer.algorithms.uniform_quantize import common_quantize, uniform_quantize_tensor

    weights = _CheckpointWeights(streamed)
    served = Served()
    store = workdir / "quantized-weights.bin"
    original_min_max = common_quantize.init_tensor_min_max
    original_quantize = uniform_quantize_tensor.uniform_quantize

    def min_max(tensor_data: Any, op_info: Any) -> Any:
        index = _marker(tensor_data)
        if index is None:
            return original_min_max(tensor_data, op_info)
        return _parted_min_max(original_min_max, weights.source(index, tensor_data.shape), op_info)

    def quantized(tensor_data: Any, params: Any, is_blockwise_quant: bool = False) -> Any:
        index = _marker(tensor_data)
        if index is None:
            return original_quantize(tensor_data, params, is_blockwise_quant)
        dtype = _dtype_of(params)
        start = -(-os.fstat(out.fileno()).st_size // 64) * 64
        os.ftruncate(out.fileno(), start + _numel(tensor_data.shape) * np.dtype(dtype).itemsize)
        source = weights.source(index, tensor_data.shape)
        _parted_quantize(original_quantize, source, params, is_blockwise_quant, out.fileno(), start)
        served.markers.add(index)
        view = np.memmap(store, dtype=dtype, mode="r", offset=start, shape=tensor_data.shape)
        served.mappings.append(view._mmap)
        return view

    with open(store, "w+b") as out:
        common_quantize.init_tensor_min_max = min_max
        uniform_quantize_tensor.uniform_quantize = quantized
        try:
            yield served
        finally:
            common_quantize.init_tensor_min_max = original_min_max
            uniform_quantize_tensor.uniform_quantize = original_quantize
            weights.close()
            served.mappings.clear()
    store.unlink(missing_ok=True)


SPLIT_FROM = 1 << 14
"""Values from which a weight's min/max and quantization run in parts of its rows on two
threads (numpy and torch let go of the GIL in their loops): each row's numbers are computed
by the same functions on the same values, so the result is the same to the bit
(tests/test_quantizing.py)."""

PART_BYTES = 64 << 20
"""The float32 size of one part: each part's rows are cast to float32 only when a thread
reaches it, and its quantized values written to the file, so neither the float32 copy of a
weight (2.5 GB for Qwen3-8B's LM head) nor its quantized values are ever whole in memory."""


def _parts(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) that cover a tensor of `shape`: one for a small tensor or one
    without rows, else at least two, each of at least two rows and about `PART_BYTES`."""
    rows = int(shape[0]) if len(shape) >= 2 else 0
    size = _numel(shape)
    if rows < 4 or size < SPLIT_FROM:
        return [(0, rows if rows else 1)]
    count = min(max(2, -(-size * 4 // PART_BYTES)), rows // 2)
    cuts = [rows * k // count for k in range(count + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(count)]


def _on_two_threads(work: Callable[[int, int], Any], parts: list[tuple[int, int]]) -> list[Any]:
    """`work(lo, hi)` for every part, two at a time, results in the parts' order."""
    import concurrent.futures

    if len(parts) == 1:
        return [work(*parts[0])]
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="litert-quantize") as pool:
        return list(pool.map(lambda part: work(*part), parts))


def _parted_min_max(original: Callable[..., Any], source: _Source, op_info: Any) -> Any:
    """`original(values, op_info)` ({"min": …, "max": …} reduced per channel or block, or {}),
    computed part by part and joined: along the rows where each part gave one entry per row,
    by minimum/maximum where each gave a single row (a reduction over rows)."""
    import numpy as np

    parts = _parts(source.shape)
    if len(parts) == 1:
        return original(source.rows(*parts[0]), op_info)
    results = _on_two_threads(lambda lo, hi: original(source.rows(lo, hi), op_info), parts)
    if not results[0] or any(set(r) != {"min", "max"} for r in results):
        return original(source.rows(0, source.shape[0]), op_info)
    joined = {}
    for key, pick in (("min", np.minimum), ("max", np.maximum)):
        found = [np.asarray(r[key]) for r in results]
        first = found[0]
        if all(
            a.ndim >= 1 and a.shape[0] == hi - lo and a.shape[1:] == first.shape[1:]
            for a, (lo, hi) in zip(found, parts, strict=True)
        ):
            joined[key] = np.concatenate(found)
        elif all(a.ndim >= 1 and a.shape == first.shape and a.shape[0] == 1 for a in found):
            joined[key] = pick.reduce(found)
        else:  # reduced some other way: computed whole
            return original(source.rows(0, source.shape[0]), op_info)
    return joined


def _parted_quantize(
    original: Callable[..., Any], source: _Source, params: Any, blockwise: bool, fd: int, start: int
) -> None:
    """`original(values, params, blockwise)` part by part, each with the rows of the scales
    and zero points that are per row (those of a single row apply to all), each part's
    quantized values written at its place in `fd` from byte `start`."""
    import numpy as np

    dtype = np.dtype(_dtype_of(params))
    rows = int(source.shape[0]) if len(source.shape) >= 2 else 0
    row_bytes = _numel(source.shape[1:]) * dtype.itemsize if rows else 0
    scale, zero = np.asarray(params.scale), np.asarray(params.zero_point)
    parts = _parts(source.shape)
    if len(parts) > 1 and (
        scale.ndim != len(source.shape) or zero.shape != scale.shape or scale.shape[0] not in (1, rows)
    ):
        parts = [(0, rows)]

    def part(lo: int, hi: int) -> None:
        if len(parts) == 1 or scale.shape[0] == 1:
            mine = dataclasses.replace(params)
        else:
            mine = dataclasses.replace(params, scale=scale[lo:hi], zero_point=zero[lo:hi])
        values = np.asarray(original(source.rows(lo, hi), mine, blockwise))
        if values.dtype != dtype:
            raise streaming.NotStreamable(f"the quantizer gave {values.dtype} values where {dtype} was expected")
        _write_at(fd, memoryview(np.ascontiguousarray(values)).cast("B"), start + lo * row_bytes)

    _on_two_threads(part, parts)


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    import os

    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _dtype_of(params: Any) -> Any:
    """The numpy type the quantizer gives quantized values of these parameters."""
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor

    qtype = uniform_quantize_tensor.IntType(params.num_bits, signed=params.signed)
    return uniform_quantize_tensor._get_numpy_dtype(qtype)


def _marker(tensor_data: Any) -> int | None:
    """The marker number a float32 weight's first values carry, else None."""
    import numpy as np

    if not isinstance(tensor_data, np.ndarray) or tensor_data.dtype != np.float32 or tensor_data.size < 8:
        return None
    return streaming.marker_index(tensor_data.reshape(-1)[:8].tobytes())


class _Source:
    """A streamed weight's checkpoint values shaped as its float model tensor, in their stored
    type, cast to float32 and clamped as the fill does a part of its rows at a time."""

    def __init__(self, tensor: Any, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.tensor = tensor.reshape(self.shape)

    def rows(self, lo: int, hi: int) -> Any:
        """Rows [lo, hi) in float32 (the whole tensor when it has no rows), exactly as the
        filled float model holds them."""
        import torch

        part = self.tensor[lo:hi] if len(self.shape) >= 2 else self.tensor
        info = torch.finfo(torch.float32)
        return part.to(torch.float32, copy=True).clamp_(min=info.min, max=info.max).numpy()


class _CheckpointWeights:
    """A streamed parameter's values by marker number: the checkpoint read one group (a
    transformer block, or the embedding and LM head) at a time, and the last parameter kept
    for the quantizer's second read."""

    def __init__(self, streamed: streaming.StreamedWeights) -> None:
        self.streamed = streamed
        self.group: dict[str, Any] = {}
        self.group_key: Any = ()
        self.last: tuple[int, _Source] | None = None

    def source(self, index: int, shape: tuple[int, ...]) -> _Source:
        """Parameter `index`'s values, shaped as its float model tensor."""
        from litert.mapping import checkpoint_state, group_of, mapped_group

        if self.last is not None and self.last[0] == index and self.last[1].shape == tuple(shape):
            return self.last[1]
        self.last = None
        name = self.streamed.names[index]
        key = group_of(name)
        if key != self.group_key or name not in self.group:
            self.group = {}
            s = self.streamed  # a fresh mapping: litert-torch's loader takes what it maps out of the state
            state, loader = checkpoint_state(s.checkpoint, s.tensor_names, s.tied_lm_head, s.unused, split=s.split)
            self.group = mapped_group(s.config, loader, state, key)
            self.group_key = key
        tensor = self.group.pop(name, None)  # kept as `last` only
        if tensor is None or tensor.is_meta:
            raise streaming.NotStreamable(f"the checkpoint mapping gave no values for {name}")
        if tensor.numel() != _numel(shape):
            raise streaming.NotStreamable(f"parameter {name} has {tensor.numel()} values for a tensor of shape {shape}")
        self.last = (index, _Source(tensor, shape))
        return self.last[1]

    def close(self) -> None:
        self.group, self.last = {}, None


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= int(n)
    return count


@contextlib.contextmanager
def _allocated_output(mappings: list[Any]) -> Iterator[None]:
    """Make the quantizer allocate its memory-mapped output file's blocks before writing into
    it, and note the mapping in `mappings`.

    Writing through a mapping into a file whose disk is full kills the process with SIGBUS;
    allocated first, a full disk is an ordinary "no space left on device" error instead.
    """
    import os

    from ai_edge_litert.tools import mmap_utils

    original = mmap_utils.get_mapped_buffer

    def allocated(path: Any, size: int) -> Any:
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            os.truncate(fd, 0)
            if size:
                os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
        mapping = original(path, size)
        mappings.append(mapping)
        return mapping

    mmap_utils.get_mapped_buffer = allocated
    try:
        yield
    finally:
        mmap_utils.get_mapped_buffer = original


@contextlib.contextmanager
def _unmapping(mappings: Callable[[], list[Any]], every: float = 1.0) -> Iterator[None]:
    """Unmap the pages of `mappings()` (shared file mappings) already touched, every `every` s.

    The quantizer reads each float weight once and writes each quantized one once; every
    page touched would stay mapped, and so count in the process's resident set, until the
    mapping is closed (for an 8B model the float file is 33 GB, more than the machine's
    memory). Dropping them from a shared mapping leaves the data where it is (the file,
    the page cache) and a later access faults it back in.
    """
    import threading

    stop = threading.Event()

    def drop() -> None:
        while not stop.wait(every):
            for mapping in mappings():
                with contextlib.suppress(ValueError, OSError):  # closed meanwhile
                    mapping.madvise(mmap.MADV_DONTNEED)

    thread = threading.Thread(target=drop, name="litert-unmap", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
