"""Families built by litert-torch's transformers-native exporter: Gemma 4, and what they share.

The checkpoints here are made by transformers from a config with weights re-drawn away
from their initial values (not by the plugins' tiny trainers), converted with `litert
convert --quantize none` through the real exporter, verified against transformers and run
in the real LiteRT-LM runtime. LFM2's and Qwen3.5's are in test_lfm2.py and test_qwen3_5.py,
which use the helpers here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_bad_input import _assert_clean_failure

from conftest import run_cli
from litert.bundle import read_bundle


def _made_by_transformers(
    architecture: str, config: dict, tokenizer_from: Path, dest: Path, scale: dict[str, float] | None = None
) -> Path:
    """A checkpoint of `architecture` built by transformers from `config`, every weight moved
    off its init; the parameters named in `scale` then multiplied (e.g. a final norm, for
    logits large enough that soft-capping changes them)."""
    import torch
    import transformers

    torch.manual_seed(1)
    model_class = getattr(transformers, architecture)
    model = model_class(model_class.config_class(**config)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
            p.mul_((scale or {}).get(name, 1.0))
    model.save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tokenizer_from / name, dest / name)
    return dest


def _vocab(tokenizer_from: Path) -> int:
    return (
        json.loads((tokenizer_from / "config.json").read_text()).get("vocab_size")
        or json.loads((tokenizer_from / "config.json").read_text())["text_config"]["vocab_size"]
    )


def _converts_exactly(path: Path, tmp_path: Path, family: str, model_type: str) -> Path:
    out = tmp_path / "out.litertlm"
    result = run_cli("convert", path, "--quantize", "none", "-o", out, "--json", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["family"] == family if "family" in done else True
    parity = done["parity"]
    assert parity["passed"], parity
    assert parity["max_abs_logit_diff"] < 1e-3, parity  # float end to end: the same computation
    info = read_bundle(out)
    assert info.llm.llm_model_type.WhichOneof("model_type") == model_type
    return out


@pytest.fixture(scope="module")
def tiny_lfm2() -> Path:
    import litert_lfm2

    return litert_lfm2.TINY_CHECKPOINT


@pytest.fixture(scope="module")
def tiny_gemma4() -> Path:
    import litert_gemma4

    return litert_gemma4.TINY_CHECKPOINT


def test_dense_gemma4_by_other_hands_converts_exactly(tmp_path: Path, tiny_gemma4: Path) -> None:
    # Gemma4ForCausalLM without per-layer embeddings: sliding and full layers with their own
    # head sizes, proportional partial RoPE on the full ones, soft-capped logits.
    config = {
        "vocab_size": _vocab(tiny_gemma4), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        "per_layer_config": {"01": {"head_dim": 32}, "03": {"head_dim": 32}}, "hidden_size_per_layer_input": 0,
        "final_logit_softcapping": 30.0, "max_position_embeddings": 1024, "bos_token_id": None,
        "pad_token_id": None, "eos_token_id": 322,
    }  # fmt: skip
    path = _made_by_transformers("Gemma4ForCausalLM", config, tiny_gemma4, tmp_path / "gemma4")
    _converts_exactly(path, tmp_path, "gemma4", "gemma4")


def test_e2b_like_gemma4_by_other_hands_converts_exactly(tmp_path: Path, tiny_gemma4: Path) -> None:
    # Gemma4ForConditionalGeneration as E2B is made: per-layer embeddings (the token and
    # per-layer embedders exported as models of their own), KV shared by the last two
    # layers, windows, per-layer-type head sizes; converted text-only. The final norm is
    # scaled so the logits grow to where soft-capping them (cap 30) matters: litert-torch's
    # decode module for this shape leaves the soft-capping out (mean KL 0.0065 here without
    # `litert.native.version_shims`, which puts it back).
    config = json.loads((tiny_gemma4 / "config.json").read_text())
    for key in ("architectures", "transformers_version", "dtype"):
        config.pop(key, None)
    path = _made_by_transformers(
        "Gemma4ForConditionalGeneration", config, tiny_gemma4, tmp_path / "gemma4-e2b",
        scale={"model.language_model.norm.weight": 8.0},
    )  # fmt: skip
    out = _converts_exactly(path, tmp_path, "gemma4", "gemma4")
    assert set(read_bundle(out).models()) >= {"tf_lite_embedder", "tf_lite_per_layer_embedder"}


def test_gemma4_causal_lm_with_per_layer_embeddings_is_refused_at_planning(tmp_path: Path, tiny_gemma4: Path) -> None:
    dest = tmp_path / "g"
    shutil.copytree(tiny_gemma4, dest)
    config = json.loads((dest / "config.json").read_text())
    text = config["text_config"]
    text.update(architectures=["Gemma4ForCausalLM"])
    (dest / "config.json").write_text(json.dumps(text))
    result = run_cli("convert", dest, "-o", tmp_path / "x.litertlm", home=tmp_path / "home")
    _assert_clean_failure(result, tmp_path, "per-layer embeddings", "Gemma4ForConditionalGeneration")


def test_the_memory_estimate_counts_what_the_exporter_holds(tmp_path: Path, tiny_gemma4: Path) -> None:
    """The transformers-native exporter traces the whole float model (nothing streams): the
    pre-flight estimate counts 4 GB and 12.5 bytes a parameter (bench/native.py), where a
    classic family of this size is estimated at 2.2 GB (test_bad_input). Under a 3.5 GB limit
    the tiny Gemma 4 is refused before any work instead of being estimated as a classic model
    and converted (a full-size one then killed by the kernel halfway)."""
    result = run_cli("convert", tiny_gemma4, "-o", tmp_path / "x.litertlm", home=tmp_path / "home",
                     env={"LITERT_MEMORY_LIMIT": "3.5GB"})  # fmt: skip
    _assert_clean_failure(result, tmp_path, "needs about 4.0 GB of memory and your limit is 3.5 GB")
    assert "Building the model" not in result.stderr


def test_a_recipe_the_exporter_lacks_is_refused_at_planning(tmp_path: Path, tiny_lfm2: Path) -> None:
    result = run_cli("convert", tiny_lfm2, "--quantize", "fp16", "-o", tmp_path / "x.litertlm", home=tmp_path / "h")
    _assert_clean_failure(result, tmp_path, "--quantize fp16", "dynamic_int8")
    assert "Exporting" not in result.stderr
