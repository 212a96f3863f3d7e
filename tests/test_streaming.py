"""Streamed weights (litert.streaming): the export holds markers, not the large weights.

The claim is that the float model comes out byte for byte as the fully loaded model
gives it, for every family, and that anything streaming cannot vouch for is detected and
converted the loaded way instead. The tiny models' weights are all below litert-torch's
1 MB resource-constant size, so these tests lower that size to 4 KB: most of each
model's weights (including fused q/k/v where k and v alone are below it) then stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litert import streaming
from litert.checkpoint import load_checkpoint
from litert.plugins import get_plugins
from litert.types import ExportSettings

SETTINGS = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64, quantize="none")


@pytest.fixture(autouse=True)
def small_resource_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOURCE_CONSTANT_NUMEL_THRESHOLD", "4096")


def build(path: Path, streamed: bool):
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path))
    with streaming.streaming(streamed):
        return plugins.call(name, "build_model", claim=claim, settings=SETTINGS)


def tiny(family: str) -> Path:
    import importlib

    return importlib.import_module(f"litert_{family}").TINY_CHECKPOINT


# One family here: every family's kit converts streamed (and on two processes) and checks
# parity against transformers and generation in LiteRT-LM.
@pytest.mark.parametrize("family", ["qwen3"])
def test_streamed_export_is_byte_identical_to_the_loaded_one(family: str, tmp_path: Path) -> None:
    from litert.lowering import lower

    module = build(tiny(family), streamed=True)
    streamed = getattr(module, streaming.ATTRIBUTE)
    params = dict(module.named_parameters())
    assert len(streamed.names) >= 4, "the test must stream weights to mean anything"
    for i, name in enumerate(streamed.names):  # marked, not loaded
        assert params[name].detach().view(-1)[:8].numpy().tobytes() == streaming.marker(i)
    (tmp_path / "streamed").mkdir()
    (tmp_path / "loaded").mkdir()
    ours = lower(module, SETTINGS, tmp_path / "streamed").path
    assert streamed.used == set(streamed.names)
    assert streaming.marked_buffers(ours) == {}, "a marker was left in the float model"
    theirs = lower(build(tiny(family), streamed=False), SETTINGS, tmp_path / "loaded").path
    assert ours.read_bytes() == theirs.read_bytes()

    # A float model whose markers are gone (here: already filled) cannot be filled again.
    with pytest.raises(streaming.NotStreamable, match="not in the float model"):
        streaming.fill(ours, streamed)


def test_a_weight_changed_after_loading_is_detected_and_converted_loaded(
    tiny_qwen3: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plugin that post-processes a large weight after load_weights would, streamed, lose
    # that change (the checkpoint's values are written later). Its marker no longer
    # matches, so the conversion is done again with the weights loaded, and says so.
    import io

    import torch

    from litert.bundle import read_bundle
    from litert.console import Progress
    from litert.convert import ConvertOptions, convert
    from litert.lowering import lower
    from litert.plugins import PluginSet

    original = PluginSet.call

    def call(self, plugin, hook, **kwargs):
        result = original(self, plugin, hook, **kwargs)
        if hook == "build_model":
            with torch.no_grad():
                result.tok_embedding.weight.mul_(1.5)
        return result

    monkeypatch.setattr(PluginSet, "call", call)
    monkeypatch.setenv("LITERT_HOME", str(tmp_path / "home"))
    out = io.StringIO()
    result = convert(
        str(tiny_qwen3),
        ConvertOptions(output=tmp_path / "q.litertlm", quantize="none", prefill_lengths=(8,), kv_cache_max_len=64,
                       verify=False),
        Progress(total=6, stream=out),
    )  # fmt: skip
    assert "the plugin changed tok_embedding.weight after loading it; exporting again with the weights loaded" in (
        out.getvalue()
    )
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(tiny_qwen3))
    loaded = plugins.call(name, "build_model", claim=claim, settings=SETTINGS)  # loaded, and changed
    assert getattr(loaded, streaming.ATTRIBUTE, None) is None
    (tmp_path / "loaded").mkdir()
    expected = lower(loaded, SETTINGS, tmp_path / "loaded").path.read_bytes()
    assert read_bundle(result.path).read_section("TFLiteModel") == expected


@pytest.mark.parametrize("family", ["qwen3"])  # every family's kit converts on two processes too
def test_two_process_export_computes_what_one_process_does(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second process lowers the second half of the signatures from its own streamed build;
    # the merged float model must compute exactly what the one-process export computes.
    from test_lowering import assert_same_outputs

    from litert.lowering import Rebuild, lower

    monkeypatch.setenv("LITERT_EXPORT_PROCESSES", "2")
    settings = ExportSettings(prefill_lengths=(8, 32), kv_cache_max_len=64, quantize="none")
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(tiny(family)))
    with streaming.streaming():
        module = plugins.call(name, "build_model", claim=claim, settings=settings)
    steps: list[str] = []
    (tmp_path / "two").mkdir()
    merged = lower(module, settings, tmp_path / "two", step=steps.append, rebuild=Rebuild(name, claim)).path
    assert steps == ["tracing prefill_8", "tracing prefill_32", "lowering to a flatbuffer",
                     "waiting for decode (second process)", "writing the weights"]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["model.tflite"]  # the halves removed
    assert streaming.marked_buffers(merged) == {}
    monkeypatch.setenv("LITERT_EXPORT_PROCESSES", "1")
    (tmp_path / "one").mkdir()
    single = lower(build_with(name, claim, settings), settings, tmp_path / "one", rebuild=Rebuild(name, claim)).path
    assert_same_outputs(merged.read_bytes(), single.read_bytes())


def build_with(name: str, claim, settings: ExportSettings):
    with streaming.streaming():
        return get_plugins().call(name, "build_model", claim=claim, settings=settings)


def _start_two_process_export(tmp_path: Path, tiny_qwen3: Path):
    """A `litert convert` on two export processes, returned once its second process is starting
    or lowering; and the TMPDIR its processes carry."""
    import os
    import subprocess
    import time

    from conftest import LITERT, SMALLEST

    home, tmpdir, out = tmp_path / "home", tmp_path / "tmp", tmp_path / "out"
    tmpdir.mkdir()
    out.mkdir()
    env = {**os.environ, "LITERT_HOME": str(home), "TMPDIR": str(tmpdir), "LITERT_EXPORT_PROCESSES": "2"}
    proc = subprocess.Popen(
        [LITERT, "convert", str(tiny_qwen3), "--prefill-lengths", "8,16", *SMALLEST[2:], "-o", str(out / "t.litertlm")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen = ""
    deadline = time.monotonic() + 120
    while "tracing prefill_8 (1/" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "tracing prefill_8 (1/" in seen, seen  # the second process is starting or lowering now
    return proc, tmpdir, out, seen


def _left(tmpdir: Path, seconds: float) -> list[str]:
    """The command lines of processes started with `tmpdir` as TMPDIR still alive after at most `seconds`."""
    import os
    import time

    def ours(pid: str) -> bool:
        try:
            return f"TMPDIR={tmpdir}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def left() -> list[str]:
        return [Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace") for p in os.listdir("/proc")
                if p.isdigit() and ours(p)]  # fmt: skip

    deadline = time.monotonic() + seconds
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    return left()


def test_ctrl_c_during_a_two_process_export_stops_both_and_leaves_nothing(tmp_path: Path, tiny_qwen3: Path) -> None:
    import signal

    proc, tmpdir, out, seen = _start_two_process_export(tmp_path, tiny_qwen3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmpdir.glob("litert-*")) == [] and list(out.iterdir()) == []  # (torch keeps a cache dir there)
    # a process being reaped may take a moment (the export would take longer)
    assert _left(tmpdir, 2) == [], "a process of the conversion outlived it"


def test_a_conversion_killed_outright_takes_its_second_export_process_with_it(tmp_path: Path, tiny_qwen3: Path) -> None:
    # kill -9 (or the OOM killer) gives the conversion no chance to stop its second process;
    # the kernel must (a parent-death signal), or it lowers on and writes a float model of 4
    # bytes per parameter into a work directory nobody will remove.
    import signal

    proc, tmpdir, _, _ = _start_two_process_export(tmp_path, tiny_qwen3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert [c for c in _left(tmpdir, 5) if "multiprocessing" in c and "resource_tracker" not in c] == [], (
        "the second export process outlived the conversion"
    )
