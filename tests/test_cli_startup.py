"""`litert --help` and `litert plugins list` stay light, and the plugin is found through
its real entry point in the installed environment."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli

HEAVY = ("torch", "litert_torch", "tensorflow", "litert_lm", "transformers", "jax")

PROBE = """
import sys
sys.argv = {argv!r}
from litert.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["litert", "--help"], ["litert", "plugins", "list"], ["litert", "plugins", "list", "--json"]]
)
def test_light_commands_import_nothing_heavy(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr or result.stderr.rstrip().endswith("HEAVY="), result.stderr


def test_plugins_list_json_shows_qwen3_from_its_entry_point(tmp_path) -> None:
    result = run_cli("plugins", "list", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    qwen3 = plugins["qwen3"]
    assert qwen3["distribution"] == "litert-qwen3"
    assert qwen3["entry_point"] == "litert_qwen3"
    assert qwen3["status"] == "ok"
    assert qwen3["families"] == ["qwen3"]
    assert qwen3["architectures"] == ["Qwen3ForCausalLM"]  # Qwen3.5 is litert-qwen3_5's
    assert plugins["qwen3_5"]["architectures"][0] == "Qwen3_5ForCausalLM"
    # API 2: the plugin's own hooks; the model class and the defaults do the rest
    hooks = (2, ["prompt_format"], "litert_qwen3.model:Qwen3")
    assert (qwen3["api_version"], qwen3["hooks"], qwen3["model"]) == hooks
    from importlib.metadata import version

    assert qwen3["version"] == version("litert-qwen3")


def test_plugins_list_table(tmp_path) -> None:
    result = run_cli("plugins", "list", home=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "DISTRIBUTION", "STATUS", "FAMILIES", "CORE", "ENTRY", "POINT"]
    assert any(row.split()[:4] == ["qwen3", "0.1.0", "litert-qwen3", "ok"] for row in rows)


def test_version_and_help(tmp_path) -> None:
    result = run_cli("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("litert ")
    result = run_cli("--help", home=tmp_path)
    assert result.returncode == 0
    for command in ("convert", "run", "demo", "plugins"):
        assert command in result.stdout
