"""Refusals and option checks in-process (typer's CliRunner): the command line says what is
wrong in one line before any work. No conversion, no runtime: part of `nox -s quick`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from litert.cli import app
from litert.errors import LitertError


def refused(*args: str, home: Path) -> str:
    """The one line `litert ARGS` prints for its LitertError (as cli.main prints it)."""
    result = CliRunner().invoke(app, list(args), env={"LITERT_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert isinstance(result.exception, LitertError), (result.exit_code, result.output, result.exception)
    line = result.exception.render()
    assert line.startswith("error: ") and "\n" not in line
    return line


CASES = [
    (["convert", "{ckpt}", "--quantize", "int3"], "unknown quantization recipe 'int3'"),
    (["convert", "{ckpt}", "--prefill-lengths", "8,x"], "prefill"),
    (["convert", "{ckpt}", "--prefill-lengths", "2048"], "does not fit a KV cache of 1280"),
    (["convert", "{ckpt}", "--kv-cache-max-len", "0"], "KV cache length must be positive"),
    (["convert", "{ckpt}", "--name", "../x"], "cannot be a model name"),
    (["convert", "{ckpt}", "-o", "x.bin"], "does not end in .litertlm"),
    (["convert", "./no-such-dir"], "no-such-dir"),
    (["run", "no-such-model", "-p", "Hi"], "no-such-model"),
    (["verify", "{ckpt}", "x.litertlm", "--tokens", "0"], "--tokens must be at least 1"),
    (["batch", "spec.toml", "--jobs", "0"], "--jobs must be at least 1"),
    (["serve", "--port", "70000"], "port 70000"),
    (["models", "rm", "nope"], "no stored model named 'nope'"),
    (["plugins", "new", "Bad-Name"], "plugin name 'Bad-Name'"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_refused_in_one_line(args: list[str], message: str, tmp_path: Path, tiny_qwen3: Path) -> None:
    line = refused(*(a.format(ckpt=tiny_qwen3) for a in args), home=tmp_path / "home")
    assert message in line, line
    assert not (tmp_path / "home" / "models").exists(), "a refusal stored something"


def test_longrope_beyond_its_original_context_is_refused_at_planning(tmp_path: Path) -> None:
    import litert_phi3

    line = refused("convert", str(litert_phi3.TINY_CHECKPOINT), "--kv-cache-max-len", "4096", home=tmp_path / "h")
    assert "longrope RoPE changes its frequencies beyond 2048 tokens" in line and "--kv-cache-max-len 2048" in line


def test_a_tiny_model_gets_the_short_export_unless_lengths_are_given(tiny_qwen3: Path) -> None:
    from litert.checkpoint import load_checkpoint
    from litert.convert import ConvertOptions, plan_conversion
    from litert.plugins import get_plugins

    def settings(**options: object):
        return plan_conversion(get_plugins(), load_checkpoint(tiny_qwen3), ConvertOptions(**options)).settings

    assert (settings().prefill_lengths, settings().kv_cache_max_len) == ((8, 64), 256)
    assert settings(kv_cache_max_len=1280).prefill_lengths == (8, 64, 128, 256, 512, 1024)
    assert settings(prefill_lengths=(8,)).kv_cache_max_len == 1280
