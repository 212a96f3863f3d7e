"""Plugin loading that survives bad plugins, against real installed distributions.

A separate virtual environment layers small plugin distributions (built and installed
with pip, registering real entry points) over the test environment: one that fails to
import, one with a misspelled hook, one written for a future plugin API, two that share an
entry-point name, and one that claims every checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import HANG, SMALLEST, make_plugin_env

PACKAGES = {
    "litert-broken": ("broken", "litert_broken", "import not_a_module_that_exists\n"),
    "litert-misspelled": (
        "misspelled",
        "litert_misspelled",
        """
        from litert import PluginManifest, hookimpl
        LITERT_PLUGIN = PluginManifest(families=("misspelled",))

        @hookimpl
        def resolve_chekpoint(checkpoint):
            return None
        """,
    ),
    "litert-future": (
        "future",
        "litert_future",
        """
        from litert import PluginManifest, hookimpl
        LITERT_PLUGIN = PluginManifest(families=("future",), api_version=3)

        @hookimpl
        def resolve_checkpoint(checkpoint):
            return None
        """,
    ),
    "litert-dup-a": (
        "dup",
        "litert_dup_a",
        "from litert import PluginManifest\nLITERT_PLUGIN = PluginManifest(families=('a',))\n",
    ),
    "litert-dup-b": (
        "dup",
        "litert_dup_b",
        "from litert import PluginManifest\nLITERT_PLUGIN = PluginManifest(families=('b',))\n",
    ),
    "litert-greedy": (
        "greedy",
        "litert_greedy",
        """
        from litert import Claim, PluginManifest, hookimpl
        LITERT_PLUGIN = PluginManifest(families=("greedy",))

        @hookimpl
        def resolve_checkpoint(checkpoint):
            return Claim(family="greedy", checkpoint=checkpoint, architecture="*")
        """,
    ),
    "litert-exits": ("exits", "litert_exits", "raise SystemExit(3)\n"),
    "litert-raiser": (
        "raiser",
        "litert_raiser",
        """
        from litert import PluginManifest, hookimpl
        LITERT_PLUGIN = PluginManifest(families=("raiser",))

        @hookimpl
        def resolve_checkpoint(checkpoint):
            return 1 / 0
        """,
    ),
    "litert-dict": (
        "dict",
        "litert_dict",
        """
        from litert import PluginManifest, hookimpl
        LITERT_PLUGIN = PluginManifest(families=("dict",))

        @hookimpl
        def resolve_checkpoint(checkpoint):
            return {"family": "dict"}
        """,
    ),
}
BAD = {"broken": "failed", "misspelled": "failed", "future": "incompatible", "dup": "duplicate", "exits": "failed"}


def _write_package(root: Path, dist: str, ep_name: str, module: str, code: str) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text(textwrap.dedent(code))
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.0.1"
            dependencies = ["litert"]

            [project.entry-points.litert]
            {ep_name} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return pkg


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-env")
    pkgs = [_write_package(root / "src", d, e, m, c) for d, (e, m, c) in PACKAGES.items()]
    return make_plugin_env(root / "venv", pkgs)


def litert(py: Path, *args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LITERT_HOME": str(home), **env}
    for key in ("LITERT_LOAD_PLUGINS", "LITERT_DISABLE_PLUGINS", "LITERT_STRICT_PLUGINS"):
        if key not in env:
            full.pop(key, None)
    return subprocess.run([py, "-m", "litert", *args], capture_output=True, text=True, env=full, timeout=HANG)


def test_list_shows_every_plugin_with_its_status(plugin_env: Path, tmp_path: Path) -> None:
    result = litert(plugin_env, "plugins", "list", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    by = {}
    for r in records:
        by.setdefault(r["name"], []).append(r)
    assert by["qwen3"][0]["status"] == "ok" and by["gemma3"][0]["status"] == "ok"
    assert by["greedy"][0]["status"] == "ok"
    for name, status in BAD.items():
        assert {r["status"] for r in by[name]} == {status}, by[name]
    assert "not_a_module_that_exists" in by["broken"][0]["error"]
    assert "resolve_chekpoint" in by["misspelled"][0]["error"]
    assert "plugin API 3" in by["future"][0]["error"] and "upgrade litert" in by["future"][0]["error"]
    assert {r["distribution"] for r in by["dup"]} == {"litert-dup-a", "litert-dup-b"}
    assert all("litert-dup-a 0.0.1 and litert-dup-b 0.0.1" in r["error"] for r in by["dup"])
    assert by["broken"][0]["distribution"] == "litert-broken" and by["broken"][0]["version"] == "0.0.1"
    assert by["greedy"][0]["requires_core"] == "litert"
    assert by["qwen3"][0]["requires_core"] == "litert==0.1.0"
    # Each problem is reported once on stderr, with distribution, version and error.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: plugin")]
    assert len(warnings) == 6
    assert any("'broken' (litert-broken 0.0.1) failed: import failed: ModuleNotFoundError" in w for w in warnings)


def test_table_lists_broken_plugins_too(plugin_env: Path, tmp_path: Path) -> None:
    result = litert(plugin_env, "plugins", "list", home=tmp_path)
    assert result.returncode == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line and " " in line}
    assert rows["broken"][3] == "failed" and rows["future"][3] == "incompatible"


def test_two_plugins_claiming_one_checkpoint(plugin_env: Path, tmp_path: Path, tiny_qwen3: Path) -> None:
    result = litert(plugin_env, "convert", str(tiny_qwen3), *SMALLEST, "--no-verify", home=tmp_path)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1
    assert "litert-greedy (greedy)" in error[0] and "litert-qwen3 (qwen3)" in error[0] and "--family" in error[0]


def test_other_commands_keep_working_and_deny_list(plugin_env: Path, tmp_path: Path, tiny_qwen3: Path) -> None:
    result = litert(
        plugin_env, "convert", str(tiny_qwen3), *SMALLEST, "--no-verify", "-o", str(tmp_path / "q.litertlm"),
        home=tmp_path, LITERT_DISABLE_PLUGINS="greedy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = litert(plugin_env, "run", str(tmp_path / "q.litertlm"), "-p", "What is the capital of France?",
                 "--temperature", "0", home=tmp_path, LITERT_DISABLE_PLUGINS="greedy")  # fmt: skip
    assert run.stdout.strip() == "The capital of France is Paris."


def test_plugins_misbehaving_in_a_hook_are_named_and_the_others_keep_working(
    plugin_env: Path, tmp_path: Path, tiny_qwen3: Path
) -> None:
    out = tmp_path / "q.litertlm"
    result = litert(
        plugin_env, "convert", str(tiny_qwen3), *SMALLEST, "--no-verify", "-o", str(out),
        home=tmp_path, LITERT_DISABLE_PLUGINS="greedy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: plugin")]
    assert any(
        "'raiser' (litert-raiser 0.0.1) failed: `resolve_checkpoint` raised ZeroDivisionError" in w for w in warnings
    )
    assert any("'dict' (litert-dict 0.0.1) failed" in w and "expected litert.Claim" in w for w in warnings)
    assert "bug in litert" not in result.stderr
    listed = litert(plugin_env, "plugins", "list", "--json", home=tmp_path)
    assert listed.returncode == 0 and {r["name"] for r in json.loads(listed.stdout)} >= {"exits", "raiser"}


def test_allow_list(plugin_env: Path, tmp_path: Path) -> None:
    result = litert(plugin_env, "plugins", "list", "--json", home=tmp_path, LITERT_LOAD_PLUGINS="qwen3,greedy")
    statuses = {r["name"]: r["status"] for r in json.loads(result.stdout)}
    assert statuses["qwen3"] == statuses["greedy"] == "ok"
    assert all(s == "blocked" for n, s in statuses.items() if n not in ("qwen3", "greedy"))
    assert "warning" not in result.stderr  # blocked by choice: nothing to warn about
    empty = litert(plugin_env, "plugins", "list", "--json", home=tmp_path, LITERT_LOAD_PLUGINS="")
    assert {r["status"] for r in json.loads(empty.stdout)} == {"blocked"}


def test_strict_mode_makes_problems_fatal(plugin_env: Path, tmp_path: Path) -> None:
    result = litert(plugin_env, "plugins", "list", home=tmp_path, LITERT_STRICT_PLUGINS="1")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "LITERT_STRICT_PLUGINS" in lines[0]
    assert "litert-broken" in lines[0]
    ok = litert(
        plugin_env, "plugins", "list", home=tmp_path, LITERT_STRICT_PLUGINS="1",
        LITERT_DISABLE_PLUGINS="broken,misspelled,future,dup,exits",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_base_environment_is_unaffected(tmp_path: Path) -> None:
    # The bad plugins live only in their own venv.
    result = subprocess.run(
        [sys.executable, "-m", "litert", "plugins", "list", "--json"],
        capture_output=True, text=True, env={**os.environ, "LITERT_HOME": str(tmp_path)},
    )  # fmt: skip
    assert {r["name"] for r in json.loads(result.stdout)} == {
        "gemma3",
        "gemma4",
        "lfm2",
        "llama",
        "phi3",
        "qwen2",
        "qwen3",
        "qwen3_5",
    }
