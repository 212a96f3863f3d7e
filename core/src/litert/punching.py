"""Holes for the zeros: the float model's streamed weights take no disk while it is written.

Why: with streamed weights (litert.streaming) every large weight reaches the float model as
a 32-byte marker and zeros, and litert-torch's native writer writes those zeros to disk: 4
bytes per parameter (33 GB for Qwen3-8B, 59 GB for Qwen3-14B, twice over while two export
processes each write their half of the signatures) that nobody reads — the quantizer takes
the weights from the checkpoint (litert.quantizing), and `streaming.fill` overwrites them.

How: the writer holds the GIL and offers no hook, so a small process of its own watches the
file grow (`python -m litert.punching PATH`, the streamed weights' sizes on standard input).
Where a buffer starts with a marker, it knows the weight and so the buffer's size, and
punches the already-written part of the buffer after the marker out of the file
(`fallocate(PUNCH_HOLE)`: the bytes read back as zeros, the blocks are free), following the
writer to the buffer's end. Safe whatever the timing: the region holds only zeros, whether
the writer wrote them before or after the punch. The writer writes its file front to back
(it rewrites only the flatbuffer's first megabyte at the end, where no weight is), so the
watcher sees each marker once. What it punched is checked against the finished file
(`check`): a buffer that is not where and as large as the watcher took it means the file is
not used (`NotStreamable`: converted again with the weights loaded).

Where the file system cannot punch holes, the watcher stops and the file is written in full.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litert import streaming

PAGE = 4096
CHUNK = 64 * 1024 * 1024
"""Bytes read at a time while looking for the next marker (between buffers: the flatbuffer
and the weights too small to stream)."""
POLL_SECONDS = 0.1
LAG_BYTES = 2 * 1000**3
"""Disk the writer may fill ahead of the watcher (it writes about 1 GB/s; the watcher looks
ten times a second), counted by the pre-flight checks."""
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def enabled() -> bool:
    """Punch the streamed weights' zeros out of the float model (LITERT_PUNCH_HOLES=0: write them, for measuring)."""
    return os.environ.get("LITERT_PUNCH_HOLES", "1") != "0" and sys.platform == "linux"


@contextlib.contextmanager
def punching(path: Path, sizes: list[int]) -> Iterator[None]:
    """While the caller writes `path`: punch out the zeros of each streamed weight (`sizes[i]`
    bytes for marker number i) as they are written; then check what was punched (raises
    `streaming.NotStreamable` when the finished file disagrees)."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", "litert.punching", str(path), json.dumps(sizes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield
    except BaseException:
        watcher.kill()
        watcher.wait()
        raise
    out, _ = watcher.communicate("done\n")  # one last pass over the finished file, then its regions
    if watcher.returncode == 0:  # else nothing or part was punched: the file is whole as far as it goes
        check(path, {int(k): tuple(v) for k, v in json.loads(out).items()})


def check(path: Path, punched: dict[int, tuple[int, int]]) -> None:
    """Each punched (start, size) must be the buffer its marker starts in the finished file."""
    found = streaming.marked_places(path)
    for index, place in punched.items():
        if found.get(index) != [place]:
            raise streaming.NotStreamable(f"weight {index} is not where its zeros were punched out of the float model")


@functools.cache
def _fallocate() -> Any:
    import ctypes

    function = ctypes.CDLL(None, use_errno=True).fallocate
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return function


def _punch(fd: int, start: int, end: int) -> bool:
    """Free the whole pages of [start, end) in `fd`; False where the file system cannot."""
    lo, hi = -(-start // PAGE) * PAGE, end // PAGE * PAGE
    return hi <= lo or _fallocate()(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, lo, hi - lo) == 0


class _Watcher:
    """Follows one file as it is written; `regions` is what it found: marker -> (start, size)."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.regions: dict[int, tuple[int, int]] = {}
        self.punched: dict[int, int] = {}  # marker -> the end of what is punched so far
        self.scanned = 0  # where to look for the next marker
        self.can_punch = True

    def step(self, fd: int) -> None:
        """Punch what was written since the last step; find the markers written since."""
        size = os.fstat(fd).st_size
        for index in list(self.regions):  # follow the writer through the buffers already found
            self._follow(fd, index, size)
        marker = streaming._MARKER.size
        while size - self.scanned >= marker:
            data = os.pread(fd, min(CHUNK, size - self.scanned), self.scanned)
            at = data.find(streaming._PREFIX)
            if at < 0:  # keep the last bytes: a marker may begin in them
                self.scanned += len(data) - len(streaming._PREFIX) + 1
                continue
            if at + marker > len(data):  # the marker is not whole in what was read
                self.scanned += at
                if len(data) < CHUNK:
                    return  # not written yet
                continue
            start = self.scanned + at
            index = streaming.marker_index(data[at : at + marker])
            if index is None or index >= len(self.sizes) or index in self.regions:
                self.scanned = start + 1
                continue
            self.regions[index] = (start, self.sizes[index])
            self.punched[index] = start + marker
            self.scanned = start + self.sizes[index]  # the rest of the buffer is zeros: no marker in it
            self._follow(fd, index, size)

    def _follow(self, fd: int, index: int, size: int) -> None:
        start, length = self.regions[index]
        end = min(start + length, size)
        if self.can_punch and end > self.punched[index]:
            self.can_punch = _punch(fd, self.punched[index], end)
            self.punched[index] = end


def main(path: str, sizes: str) -> int:
    """The watcher process: steps every POLL_SECONDS until standard input says "done" (or
    ends), then a last step over the finished file; prints the regions found as JSON."""
    import select

    watcher = _Watcher(json.loads(sizes))
    fd = None
    finished = False
    while not finished and watcher.can_punch:
        finished = bool(select.select([sys.stdin], [], [], POLL_SECONDS)[0])
        if fd is None:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDWR)
        if fd is not None:
            watcher.step(fd)
    if fd is not None:
        os.close(fd)
    print(json.dumps(watcher.regions))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
