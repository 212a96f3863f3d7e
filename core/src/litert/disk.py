"""Pre-flight disk check: room for the conversion's work files and for the bundle.

The export writes the float model into the work directory (under TMPDIR) at 4 bytes per
parameter, the quantizer writes its result beside it, and the bundle then goes next to
the output. For an 8B model that is 33 GB of float model: refusing at the start, in one
line, beats failing after minutes of export (which is also caught, `convert._disk_full`).

One write cannot be caught once it starts: the converter's own writer of the float model
(LLVM's) ends the whole process with exit status 1 when the disk fills under it, saying
so only in the captured log, which is on that same full disk. So that write is checked
just before it starts (`ensure_room`), against the bytes it is about to write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from litert.errors import LitertError

BYTES_PER_PARAM = {
    "none": 4.0,
    "fp16": 2.0,
    "dynamic_int8": 1.0,
    "weight_only_int8": 1.0,
    "dynamic_int4_block32": 0.6,
    "dynamic_int4_block128": 0.55,
    "dynamic_int4_mlp": 0.8,
    "dynamic_int4_int8_head": 0.65,
}
"""The final model's size per parameter for each recipe (weights and their scales)."""

WORK_SLACK = 16 * 1024 * 1024
"""Work-directory bytes beside the models: the captured logs, the compilers' caches, the
flatbuffer's own structure. Nothing a real model notices; a tiny one would otherwise be
let through into a TMPDIR a few kilobytes too small, where the writer above fails."""


def needed(params: int, quantize: str, processes: int = 1, verify: bool = False) -> tuple[int, int]:
    """(work directory, output directory) bytes a conversion of `params` parameters needs at its peak.

    With two export processes each writes its half of the signatures as a float model with
    every weight in it, so both halves (4 bytes per parameter each) exist at once.
    Verification keeps the final model in the work directory and writes XNNPACK's packed
    copy of its weights beside it (about the same size; `litert.tflite_runner`).
    """
    final = BYTES_PER_PARAM.get(quantize, 4.0) * params
    work = 4 * params + (final if quantize != "none" else 0)  # the float model, the quantized one beside it
    if from_checkpoint(params, quantize):
        work += final  # the quantized values' file (litert.quantizing), beside both
    work = max(work, 4 * params * processes, 2 * final if verify else 0)
    return int(work + WORK_SLACK), int(final)


def from_checkpoint(params: int, quantize: str) -> bool:
    """Whether a conversion's weights go from the checkpoint into the quantizer through a file
    of quantized values (litert.quantizing): streamed weights (models of 100 M parameters
    and more stream nearly all of theirs) and a min-max recipe."""
    from litert import quantizing, streaming

    return (
        params >= streaming.NEARLY_ALL_FROM
        and streaming.enabled()
        and quantizing.enabled()
        and quantize not in ("none", "fp16")
    )


def room_for(params: int, quantize: str, processes: int) -> bool:
    """Whether TMPDIR has the room a conversion on `processes` export processes needs."""
    import shutil

    work, _ = needed(params, quantize, processes)
    return shutil.disk_usage(tempfile.gettempdir()).free >= work


def _device(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return os.stat(path).st_dev


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_disk(params: int, quantize: str, output: Path, verify: bool = False) -> None:
    """Raise LitertError when TMPDIR or the output's disk cannot hold what the conversion writes."""
    import shutil

    from litert.console import human_size

    work_dir, out_dir = Path(tempfile.gettempdir()), _existing(output.resolve().parent)
    work, final = needed(params, quantize, verify=verify)
    if _device(work_dir) == _device(out_dir):
        # the model file and the bundle coexist while the bundle is written (and verified:
        # with the packed weights beside them)
        places = [(work_dir, max(work, (3 if verify else 2) * final + WORK_SLACK), "the work files and the bundle")]
    else:
        places = [(work_dir, work, "the work files"), (out_dir, final, "the bundle")]
    for where, need, what in places:
        free = shutil.disk_usage(where).free
        if need > free:
            raise LitertError(
                f"converting needs about {human_size(need)} of disk for {what} in {where} "
                f"and {human_size(free)} is free",
                "free some space, or point TMPDIR (the work files) or -o (the bundle) at a larger disk",
            )


def ensure_room(path: Path, nbytes: int) -> None:
    """Raise "no space left on device" for `path` before a native writer that cannot report
    it (see above) starts writing about `nbytes` there."""
    import errno
    import shutil

    free = shutil.disk_usage(path.parent).free
    if nbytes + WORK_SLACK // 16 > free:  # a megabyte of margin for the flatbuffer's structure
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def probe_write(directory: Path) -> None:
    """Create `directory` if needed and a file in it, then remove the file: raises the OSError
    a write there would meet (read-only mount, full disk, permissions, a file in the way)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".litert-probe-"):
        pass
