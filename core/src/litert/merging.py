"""Two float .tflite models, each holding some of a model's signatures, merged into one.

Why: tracing and lowering one signature is single-threaded Python (about 14 s each for
Qwen3-0.6B, seven of them), so a conversion can lower half of its signatures in a second
process on the other core. Both halves come from the same streamed build
(litert.streaming), so each large weight carries the same numbered marker in both files:
the merge keeps the first file's buffer for it and points the second file's tensors at
that one (a weight only the second half uses is appended: the prefill signatures compute
no logits, so the last block's MLP is pruned from them). Everything else of the second
file (subgraphs, their small constants, operator codes, signatures) is appended, small
constants equal to one already there shared; its tensor names are made unique across
the model (the quantizer requires it). The weights are written into the merged file
afterwards, as for one process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from litert.flatbuffer import read_head
from litert.streaming import marker, marker_index

_ALIGN = 64


def _buffer_bytes(buffer: Any, path: Path) -> bytes | None:
    """A buffer's content (its inline data, or read from the file at its offset), None if empty."""
    if buffer.offset > 1:
        with open(path, "rb") as f:
            f.seek(buffer.offset)
            return f.read(buffer.size)
    if buffer.data is None or len(buffer.data) == 0:
        return None
    import numpy as np

    return np.asarray(buffer.data, dtype=np.uint8).tobytes()


def _marker(buffer: Any, path: Path) -> int | None:
    if buffer.offset > 1:
        if buffer.size < 32:
            return None
        with open(path, "rb") as f:
            f.seek(buffer.offset)
            first = f.read(32)
    elif buffer.data is not None and len(buffer.data) >= 32:
        import numpy as np

        first = np.asarray(buffer.data[:32], dtype=np.uint8).tobytes()
    else:
        return None
    return marker_index(first)


def _shift_subgraph_references(op: Any, shift: int) -> None:
    """Options naming another subgraph by index (a STABLEHLO_COMPOSITE's decomposition, WHILE's
    condition and body, IF's branches, CALL_ONCE's init, StableHLO reduce bodies) follow it."""
    for options in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        if options is None:
            continue
        for name, value in vars(options).items():
            if isinstance(value, int) and (name.endswith("SubgraphIndex") or name == "subgraph"):
                setattr(options, name, value + shift)


def merge(first: Path, second: Path, out: Path) -> None:
    """Write to `out` the model with the signatures of `first`, then those of `second`.

    `second` is deleted once read (before `out` is written), so the disk holds at most the
    two halves, then `first` and a sparse `out`.
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    head_a, data_a = read_head(first)
    head_b, _ = read_head(second)
    a = schema.ModelT.InitFromObj(schema.Model.GetRootAs(head_a, 0))
    b = schema.ModelT.InitFromObj(schema.Model.GetRootAs(head_b, 0))
    external = any(buf.offset > 1 for buf in a.buffers or [])

    # The first file's buffers: by marker, and small ones by content.
    by_marker: dict[int, int] = {}
    by_content: dict[bytes, int] = {}
    for i, buf in enumerate(a.buffers):
        index = _marker(buf, first)
        if index is not None:
            by_marker[index] = i
        elif buf.offset <= 1 or buf.size <= 1 << 20:
            content = _buffer_bytes(buf, first)
            if content is not None:
                by_content.setdefault(hashlib.sha256(content).digest(), i)

    appended: list[tuple[Any, bytes]] = []  # the second file's buffers stored after the first's (external mode)
    remap = {0: 0}
    for j, buf in enumerate(b.buffers):
        if j == 0:
            continue
        index = _marker(buf, second)
        if index is not None and index in by_marker:
            remap[j] = by_marker[index]
            continue
        # A weight only the second file's signatures use (prefill signatures compute no
        # logits, so the last block's MLP is pruned from them): its marker and, in the
        # merged file, a hole of its size; or a small constant.
        if index is not None and buf.offset > 1:
            content, size = marker(index), buf.size
        else:
            content = _buffer_bytes(buf, second)
            size = len(content) if content is not None else 0
        key = hashlib.sha256(content).digest() if content is not None and index is None else None
        if key is not None and key in by_content:
            remap[j] = by_content[key]
            continue
        new = schema.BufferT()
        if content is not None:
            if external:
                # a placeholder offset (not 0, which flatbuffers would leave out), set once positions are known
                new.offset, new.size = 2, size
                appended.append((new, content))
            else:
                new.data = np.frombuffer(content, dtype=np.uint8)
        remap[j] = len(a.buffers)
        a.buffers.append(new)
        if key is not None:
            by_content[key] = remap[j]
        if index is not None:
            by_marker[index] = remap[j]

    second.unlink()  # all of it that is needed is read: its disk is free before the merged file is written

    def code_key(c: Any) -> tuple[Any, ...]:
        return (c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version)

    codes = {code_key(c): i for i, c in enumerate(a.operatorCodes)}
    code_map = {}
    for j, c in enumerate(b.operatorCodes):
        if code_key(c) not in codes:
            codes[code_key(c)] = len(a.operatorCodes)
            a.operatorCodes.append(c)
        code_map[j] = codes[code_key(c)]

    names = {t.name for sg in a.subgraphs for t in sg.tensors or []}
    shift = len(a.subgraphs)
    for sg in b.subgraphs:
        for tensor in sg.tensors or []:
            tensor.buffer = remap[tensor.buffer]
            if tensor.name in names:
                base, n = tensor.name or b"", 2
                while base + b"_%d" % n in names:
                    n += 1
                tensor.name = base + b"_%d" % n
            names.add(tensor.name)
        for op in sg.operators or []:
            op.opcodeIndex = code_map[op.opcodeIndex]
            _shift_subgraph_references(op, shift)
        a.subgraphs.append(sg)
    for sig in b.signatureDefs or []:
        sig.subgraphIndex += shift
        a.signatureDefs.append(sig)

    def serialize() -> bytes:
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(a.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    flat = serialize()
    if not external:
        out.write_bytes(flat)
        return
    # Weights after the flatbuffer: each of the first file's buffers where it was (relative to
    # the data region), then the appended ones. A weight's region is written as its marker
    # and a hole (a sparse file): `fill` writes the values, so its zeros never take disk.
    start = -(-len(flat) // _ALIGN) * _ALIGN
    moved = start - data_a
    placed = {id(buf) for buf, _ in appended}
    content_a = {}
    for buf in a.buffers:
        if buf.offset > 1 and id(buf) not in placed:
            index = _marker(buf, first)
            content_a[id(buf)] = marker(index) if index is not None else _buffer_bytes(buf, first)
            buf.offset += moved
    end = max((buf.offset + buf.size for buf in a.buffers if buf.offset > 1 and id(buf) not in placed), default=start)
    position = -(-end // _ALIGN) * _ALIGN
    for buf, _ in appended:
        buf.offset = position
        position = -(-(position + buf.size) // _ALIGN) * _ALIGN
    again = serialize()
    if len(again) > start:  # offsets are fixed-width, so this cannot grow; guard anyway
        raise ValueError("the merged flatbuffer grew when its offsets were set")
    with open(out, "wb") as f:
        f.write(again)
        for buf in a.buffers:
            data = content_a.get(id(buf))
            if data:
                f.seek(buf.offset)
                f.write(data)
        for buf, data in appended:
            f.seek(buf.offset)
            f.write(data)
        f.truncate(max([start, end] + [buf.offset + buf.size for buf, _ in appended]))
