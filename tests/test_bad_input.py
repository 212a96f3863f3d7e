"""Bad input: one clear line, a non-zero exit, and no bundle (whole or partial) left behind."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import FAST, run_cli

# Stage lines (finished on the same line, or opened for the steps below them), the plan
# line, and indented lines inside a stage (its steps, its "done").
PROGRESS = re.compile(
    r"^(\[\d/\d\] .* \.\.\.( done \(.*\)| failed)?|      \w+ via .*|      note: .*"
    r"|      (done \(.*\)|failed)|      .* \(\d+/\d+\) \.\.\. .*)$"
)


def _assert_clean_failure(result, out_dir: Path, *needles: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    # Progress lines ("[1/6] Reading ... failed") may precede it; the error is one line.
    lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert " — " in lines[0], "the line says how to fix it"
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr
    leftovers = [p.name for p in out_dir.rglob("*") if p.suffix in (".litertlm", ".partial") or ".partial" in p.name]
    assert leftovers == []


@pytest.fixture
def copy_tiny(tmp_path: Path, tiny_qwen3: Path):
    def make(name: str = "ckpt") -> Path:
        dest = tmp_path / name
        shutil.copytree(tiny_qwen3, dest)
        return dest

    return make


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    result = run_cli("convert", tmp_path / "nope", home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "does not exist")


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("convert", tmp_path / "empty", home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "no config.json")


def test_architecture_no_plugin_claims(tmp_path: Path, copy_tiny) -> None:
    ckpt = copy_tiny()
    config = json.loads((ckpt / "config.json").read_text())
    config["architectures"] = ["MambaForCausalLM"]
    config["model_type"] = "mamba"
    (ckpt / "config.json").write_text(json.dumps(config))
    result = run_cli("convert", ckpt, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(
        result,
        tmp_path,
        "MambaForCausalLM",
        "installed families: gemma3, gemma4, lfm2, llama, phi3, qwen2, qwen3, qwen3_5",
        "pip install litert-mamba",
    )


def test_truncated_safetensors(tmp_path: Path, copy_tiny) -> None:
    ckpt = copy_tiny()
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    result = run_cli("convert", ckpt, *FAST, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "model.safetensors is truncated", "re-download")


def test_missing_tokenizer(tmp_path: Path, copy_tiny) -> None:
    ckpt = copy_tiny()
    (ckpt / "tokenizer.json").unlink()
    result = run_cli("convert", ckpt, *FAST, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "tokenizer.json")


def test_weights_that_do_not_match_config(tmp_path: Path, copy_tiny) -> None:
    # Found from the safetensors headers while reading, before any model is built.
    ckpt = copy_tiny()
    config = json.loads((ckpt / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (ckpt / "config.json").write_text(json.dumps(config))
    result = run_cli("convert", ckpt, *FAST, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "says 3 layers but the weights hold layers 0…1")


def test_pickle_only_checkpoint_is_refused(tmp_path: Path, copy_tiny) -> None:
    ckpt = copy_tiny()
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    result = run_cli("convert", ckpt, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "pickle", "pytorch_model.bin")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--quantize", "int3"), "unknown quantization recipe 'int3'"),
        (("--prefill-lengths", "8,x"), "comma-separated integers"),
        (("--prefill-lengths", "8,512", "--kv-cache-max-len", "256"), "prefill length 512 does not fit"),
        (("--family", "gemma9"), "family 'gemma9' does not claim"),
        (("-o", "out.tflite"), "does not end in .litertlm"),
    ],
)
def test_bad_options(tmp_path: Path, tiny_qwen3: Path, args: tuple[str, ...], needle: str) -> None:
    result = run_cli("convert", tiny_qwen3, *args, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, needle)


def test_run_unknown_model(tmp_path: Path) -> None:
    result = run_cli("run", "no-such-model", "-p", "hi", home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(
        result, tmp_path, "no bundle file or stored model named 'no-such-model'", "the model store is empty"
    )
    assert "litert convert no-such-model" not in result.stderr  # a hint that would not work


def test_run_file_that_is_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.litertlm"
    junk.write_bytes(b"not a bundle at all")
    result = run_cli("run", junk, "-p", "hi", home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not a readable LiteRT-LM bundle" in lines[0]


def test_run_empty_stdin(qwen3_bundle: Path, session_home: Path) -> None:
    result = run_cli("run", qwen3_bundle, input="\n", home=session_home)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: the prompt on standard input is empty")


def test_run_bad_sampler_override(qwen3_bundle: Path, session_home: Path) -> None:
    result = run_cli("run", qwen3_bundle, "-p", "hi", "--top-p", "1.5", home=session_home)
    assert result.returncode == 1
    assert "top_p must be in (0, 1]" in result.stderr


def test_int4_block_larger_than_the_model_dimensions(tmp_path: Path, tiny_qwen3: Path) -> None:
    # The tiny model's hidden size is 64: block 128 cannot work; caught before exporting.
    result = run_cli(
        "convert", tiny_qwen3, *FAST, "--quantize", "dynamic_int4_block128", home=tmp_path / "home", cwd=tmp_path
    )
    _assert_clean_failure(result, tmp_path, "multiples of 128", "this model has 64", "dynamic_int4_block32")
    assert "Building the model" not in result.stderr  # refused at planning, from config.json


def test_not_enough_memory_stops_before_any_work(tmp_path: Path, tiny_qwen3: Path) -> None:
    result = run_cli_env(tmp_path, tiny_qwen3, LITERT_MEMORY_LIMIT="1GB")
    _assert_clean_failure(
        result, tmp_path, "needs about 2.2 GB of memory and your limit is 1.0 GB (LITERT_MEMORY_LIMIT=1GB)"
    )
    assert "Building the model" not in result.stderr


def run_cli_env(tmp_path: Path, ckpt: Path, extra: tuple[str, ...] = (), **env: str):
    from conftest import SMALLEST

    return run_cli("convert", ckpt, *SMALLEST, *extra, home=tmp_path / "home", cwd=tmp_path, env=env)


def test_not_enough_disk_is_refused_before_any_work(tmp_path: Path) -> None:
    # An 8B model's float file alone is 33 GB: the check counts the work files (float model,
    # the quantized values' file and the quantized model) and the bundle against the real
    # free space of TMPDIR and -o's disk.
    from litert.disk import WORK_SLACK, check_disk, needed
    from litert.errors import LitertError

    assert needed(8_190_000_000, "dynamic_int8") == (49_140_000_000 + WORK_SLACK, 8_190_000_000)
    assert needed(8_190_000_000, "fp16") == (49_140_000_000 + WORK_SLACK, 16_380_000_000)
    assert needed(1000, "none") == (4000 + WORK_SLACK, 4000)
    check_disk(10**6, "dynamic_int8", tmp_path / "small.litertlm")  # 5 MB fits
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(LitertError, match=r"converting needs about [\d.]+ GB of disk for the work files") as exc:
        check_disk(free, "fp16", tmp_path / "deep" / "huge.litertlm")  # 6 bytes per parameter
    assert "point TMPDIR" in exc.value.hint


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        ("INTERNAL: Task failed with state: 7", "longer than the bundle's context"),
        ("Input token ids are too long. Exceeding the maximum number of tokens allowed", "--kv-cache-max-len"),
        ("INTERNAL: Failed to allocate tensors", "could not set the model up"),
        ("UNKNOWN: something the runtime says", "the runtime's log is in"),
    ],
)
def test_a_runtime_failure_names_the_cause_its_message_points_to(message: str, hint: str) -> None:
    # "the prompt may be longer than the context" was said for every failure, also where the
    # runtime could not allocate the model at all (the int4 zero-scale bundles).
    from litert.runtime import _generation_failed

    error = _generation_failed(RuntimeError(message))
    assert error.message == f"generation failed: {message}"
    assert hint in error.hint
