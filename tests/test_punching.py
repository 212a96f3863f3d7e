"""Holes for the streamed weights' zeros (litert.punching).

The claim: the float model reads back byte for byte as the writer wrote it, while the zeros
after each marker take no disk — and whatever the watcher and the writer's timing, nothing
but those zeros is ever punched out.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from litert import punching, streaming
from litert.checkpoint import load_checkpoint
from litert.plugins import get_plugins
from litert.types import ExportSettings


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_the_watcher_punches_only_the_zeros_after_a_marker_as_the_file_grows(tmp_path: Path) -> None:
    # A file written slowly, in pieces that cut markers in two: random bytes, a decoy that
    # starts like a marker, two marked buffers of zeros, random bytes between and after.
    rng = random.Random(0)
    noise = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731
    sizes = [3 << 20, 5 << 20]
    parts = [
        noise(70_001),
        streaming._PREFIX + b"\xff" * 16,  # not a marker: its index is out of range
        noise(5_003),
        streaming.marker(1) + bytes(sizes[1] - 32),
        noise(100_000),
        streaming.marker(0) + bytes(sizes[0] - 32),
        noise(9_999),
    ]
    expected = b"".join(parts)
    path = tmp_path / "model.tflite"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "litert.punching", str(path), json.dumps(sizes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with open(path, "wb", buffering=0) as f:
        for begin in range(0, len(expected), 65_537):
            f.write(expected[begin : begin + 65_537])
            time.sleep(0.002)
    out, _ = watcher.communicate("done\n", timeout=60)
    assert watcher.returncode == 0
    regions = {int(k): tuple(v) for k, v in json.loads(out).items()}
    first = expected.index(streaming.marker(1))
    second = expected.index(streaming.marker(0))
    assert regions == {1: (first, sizes[1]), 0: (second, sizes[0])}
    assert path.read_bytes() == expected
    # the two buffers' zeros (8 MB but the pages they share with the bytes around) take no disk
    assert allocated(path) <= len(expected) - sum(sizes) + 8 * punching.PAGE


SETTINGS = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64, quantize="dynamic_int8")


@pytest.fixture
def small_resource_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOURCE_CONSTANT_NUMEL_THRESHOLD", "4096")  # the tiny model's weights stream


def test_a_streamed_float_model_is_written_with_holes_and_reads_as_without(
    tiny_qwen3: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_resource_constants: None
) -> None:
    from litert.lowering import lower

    def lowered(where: str) -> tuple[Path, list[int]]:
        plugins = get_plugins()
        name, claim = plugins.claim(load_checkpoint(tiny_qwen3))
        with streaming.streaming():
            module = plugins.call(name, "build_model", claim=claim, settings=SETTINGS)
        (tmp_path / where).mkdir()
        result = lower(module, SETTINGS, tmp_path / where)
        assert result.streamed is not None, "the weights must go from the checkpoint into the quantizer"
        return result.path, result.streamed.sizes

    holes, sizes = lowered("holes")
    monkeypatch.setenv("LITERT_PUNCH_HOLES", "0")
    whole, _ = lowered("whole")
    assert holes.read_bytes() == whole.read_bytes()
    assert allocated(whole) >= sum(sizes)
    assert allocated(holes) < allocated(whole) - sum(sizes) // 2
