"""The flatbuffer part of a .tflite file: weights may be stored after it (buffers with an
offset), and the passes that rewrite the model's tables (sharing quantization parameters,
merging two halves) read and write only that part."""

from __future__ import annotations

from pathlib import Path

__all__ = ["flatbuffer_end", "read_head"]


def flatbuffer_end(path: Path) -> int:
    """Where the flatbuffer ends: the first weight stored after it (buffers with an offset), or the file's end."""
    import mmap

    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model = schema.Model.GetRootAs(data, 0)
        offsets = [model.Buffers(i).Offset() for i in range(model.BuffersLength())]
        del model
    return min((o for o in offsets if o > 1), default=path.stat().st_size)


def read_head(path: Path) -> tuple[bytes, int]:
    """The flatbuffer part of a .tflite (weights stored after it are not read) and where it ends."""
    end = flatbuffer_end(path)
    with open(path, "rb") as f:
        return f.read(end), end
