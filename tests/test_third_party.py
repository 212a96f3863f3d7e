"""A third family written the way an outsider would, and the scaffold that starts one.

`tests/third_party/litert-smollm` is a separate distribution (made with
`litert plugins new smollm`) that depends on the core only through the published
contract. Installed into a virtual environment beside the first-party plugins, it is
listed, claims its checkpoints, converts, runs and passes the plugin kit, with no change
to core/."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import HANG, PARIS_PROMPT, SMALLEST, make_plugin_env

THIRD_PARTY = Path(__file__).parent / "third_party" / "litert-smollm"
PUBLIC = set(__import__("litert").PUBLIC_MODULES)


def cli(py: Path, *args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITERT_HOME": str(home)}
    return subprocess.run([py, "-m", "litert", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=HANG)


def kit(
    py: Path, tests: Path, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITERT_HOME": str(home), **(env or {})}
    return subprocess.run(
        [py, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "-p", "no:anyio", "--rootdir", str(tests),
         *args],
        capture_output=True, text=True, env=env, timeout=HANG,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smollm_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_plugin_env(tmp_path_factory.mktemp("smollm-env") / "venv", [THIRD_PARTY])


def test_third_party_uses_only_the_published_contract() -> None:
    for path in THIRD_PARTY.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "litert":
                assert node.module in PUBLIC, f"{path.name} imports {node.module}, not part of the plugin contract"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("litert.") or alias.name in PUBLIC, (path.name, alias.name)


def test_listed_claims_converts_and_runs(smollm_env: Path, tmp_path: Path) -> None:
    listing = json.loads(cli(smollm_env, "plugins", "list", "--json", home=tmp_path).stdout)
    smollm = next(p for p in listing if p["name"] == "smollm")
    assert smollm["status"] == "ok" and smollm["distribution"] == "litert-smollm"
    assert smollm["architectures"] == ["LlamaForCausalLM"]
    tiny = THIRD_PARTY / "src" / "litert_smollm" / "tiny" / "Smollm-tiny"
    result = cli(smollm_env, "convert", str(tiny), *SMALLEST, home=tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "smollm via litert-smollm 0.1.0" in result.stderr  # wins over litert-llama's lower-priority claim
    assert result.stdout.strip().splitlines()[-1].endswith("— pass")
    run = cli(smollm_env, "run", "Smollm-tiny", "-p", PARIS_PROMPT, "--temperature", "0", home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Paris" in run.stdout


def test_third_party_passes_the_kit(smollm_env: Path, tmp_path: Path) -> None:
    result = kit(smollm_env, THIRD_PARTY / "tests", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


SHAPES = {"mini_mistral": "MistralForCausalLM", "mini_qwen2": "Qwen2ForCausalLM", "mini_phi3": "Phi3ForCausalLM",
          "mini_gemma": "Gemma3ForCausalLM"}  # fmt: skip


def test_scaffold_output_installs_and_passes_the_kit(tmp_path: Path) -> None:
    """A package scaffolded for each shape the scaffold knows installs, is listed, and passes
    its own kit: the stress variants for every shape, and for Phi-3 (fused projections, partial
    rotary) the conversion with parity and the runtime's answer too. The first-party plugins
    claiming the same architectures are disabled, so each scaffold claims its checkpoint alone."""
    home = tmp_path / "home"
    tool = make_plugin_env(tmp_path / "tool-env", [])
    for name, architecture in SHAPES.items():
        made = cli(tool, "plugins", "new", name, "--dir", str(tmp_path), "--architecture", architecture, home=home)
        assert made.returncode == 0, made.stderr
        title = "".join(p.capitalize() for p in name.split("_"))
        assert (
            tmp_path / f"litert-{name}" / "src" / f"litert_{name}" / "tiny" / f"{title}-tiny" / "model.safetensors"
        ).is_file()
        code = [p for p in (tmp_path / f"litert-{name}" / "src").rglob("*.py") if p.parent.name != "tiny"]
        assert sum(len(p.read_text().splitlines()) for p in code) < 60, (
            f"{name}: the scaffold holds more than what differs"
        )
    py = make_plugin_env(tmp_path / "venv", [tmp_path / f"litert-{name}" for name in SHAPES])
    disabled = {"LITERT_DISABLE_PLUGINS": "qwen2,phi3,gemma3"}
    listing = json.loads(cli(py, "plugins", "list", "--json", home=home).stdout)
    assert {p["name"]: p["status"] for p in listing if p["name"] in SHAPES} == dict.fromkeys(SHAPES, "ok")
    for name in SHAPES:
        subset = () if name == "mini_phi3" else ("-k", "not converts_and_passes_parity and not runs_in_litert_lm")
        result = kit(py, tmp_path / f"litert-{name}" / "tests", home, *subset, env=disabled)
        assert result.returncode == 0, f"{name}: " + result.stdout[-3000:]
        assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.parametrize("name", ["Bad-Name", "class", "9lives"])
def test_scaffold_refuses_bad_names(name: str, tmp_path: Path) -> None:
    from conftest import run_cli

    result = run_cli("plugins", "new", name, "--dir", tmp_path, home=tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.startswith("error: plugin name") and list(tmp_path.glob("litert-*")) == []
