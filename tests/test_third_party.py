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
# A checkpoint of each shape made by transformers (every weight re-drawn), from a first-party
# tiny config: what the scaffolded model class must compute exactly.
CHECK_SHAPE = """
import json, sys
from pathlib import Path
from litert import stress
import litert_gemma3, litert_qwen2
name, tmp = sys.argv[1], Path(sys.argv[2])
def mistral(c):
    for key in ("use_sliding_window", "max_window_layers", "layer_types"):
        c.pop(key, None)
    c.update(model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=5)
base, edit = {"mini_mistral": (litert_qwen2.TINY_CHECKPOINT, mistral),
              "mini_qwen2": (litert_qwen2.TINY_CHECKPOINT, lambda c: None),
              "mini_gemma": (litert_gemma3.TINY_CHECKPOINT, lambda c: None)}[name]
path = stress.make_variant(base, stress.StressVariant(name, "", edit), tmp / name)
result = stress.compare(name, path)
print(json.dumps({"ok": result.ok, "describe": result.describe()}))
"""


def test_scaffold_output_installs_and_passes_the_kit(tmp_path: Path) -> None:
    """A package scaffolded for each shape the scaffold knows installs and is listed; its model
    class computes what transformers computes on a checkpoint of that shape with re-drawn
    weights; and the Phi-3 one (fused projections, partial rotary) passes its kit: the conversion with
    `--quantize none` parity and the runtime's answer (its stress variants are litert-phi3's). The first-party
    plugins claiming the same architectures are disabled, so each scaffold claims alone."""
    from conftest import run_cli

    home = tmp_path / "home"
    for name, architecture in SHAPES.items():
        tiny = () if name == "mini_phi3" else ("--no-tiny",)  # a tiny model trained for the kit run below
        made = run_cli("plugins", "new", name, "--dir", tmp_path, "--architecture", architecture, *tiny, home=home)
        assert made.returncode == 0, made.stderr
        code = [p for p in (tmp_path / f"litert-{name}" / "src").rglob("*.py") if p.parent.name != "tiny"]
        assert sum(len(p.read_text().splitlines()) for p in code) < 60, (
            f"{name}: the scaffold holds more than what differs"
        )
    assert (
        tmp_path / "litert-mini_phi3" / "src" / "litert_mini_phi3" / "tiny" / "MiniPhi3-tiny" / "model.safetensors"
    ).is_file()
    py = make_plugin_env(tmp_path / "venv", [tmp_path / f"litert-{name}" for name in SHAPES])
    disabled = {**os.environ, "LITERT_HOME": str(home), "LITERT_DISABLE_PLUGINS": "qwen2,phi3,gemma3"}
    listing = json.loads(cli(py, "plugins", "list", "--json", home=home).stdout)
    assert {p["name"]: p["status"] for p in listing if p["name"] in SHAPES} == dict.fromkeys(SHAPES, "ok")
    for name in ("mini_mistral", "mini_qwen2", "mini_gemma"):
        checked = subprocess.run([py, "-c", CHECK_SHAPE, name, str(tmp_path)], capture_output=True, text=True,
                                 env=disabled, timeout=HANG)  # fmt: skip
        assert checked.returncode == 0, checked.stderr[-2000:]
        result = json.loads(checked.stdout.strip().splitlines()[-1])
        assert result["ok"], f"{name}: {result['describe']}"
    # its stress variants are litert-phi3's (the same knobs), run in that plugin's kit
    result = kit(py, tmp_path / "litert-mini_phi3" / "tests", home, "-k", "not stress_variant",
                 env={"LITERT_DISABLE_PLUGINS": "qwen2,phi3,gemma3"})  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.parametrize("name", ["Bad-Name", "class", "9lives"])
def test_scaffold_refuses_bad_names(name: str, tmp_path: Path) -> None:
    from conftest import run_cli

    result = run_cli("plugins", "new", name, "--dir", tmp_path, home=tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.startswith("error: plugin name") and list(tmp_path.glob("litert-*")) == []
