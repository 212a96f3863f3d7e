"""Qwen3.5: a checkpoint made by transformers converted through the real exporter (its
linear attention as plain operations), verified against transformers and run in the real
runtime; the models not proven are refused at planning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_bad_input import _assert_clean_failure
from test_native import _converts_exactly, _made_by_transformers, _vocab

from conftest import run_cli
from litert.bundle import read_bundle

QWEN3_5_CONFIG = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 1024,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16,
    "linear_value_head_dim": 16, "pad_token_id": None, "bos_token_id": None,
}  # fmt: skip


def test_qwen3_5_by_other_hands_converts_exactly_and_answers_alike_twice(
    tmp_path: Path, tiny_qwen3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three gated delta-net (linear attention) layers and a full-attention one, made by
    # transformers. Exported with the fused `gated_delta_update` op, litert's .tflite runner
    # could not run the graph and LiteRT-LM's answers parted at the first token; as plain
    # operations, with the padding told by position and the states emptied at position 0,
    # the graph is transformers' and so are the runtime's answers — also for a question
    # asked again on the same engine (the states the last conversation left are not used).
    import litert_lm

    from litert.runtime import open_engine
    from litert.verify import QUESTIONS, _runtime_answer

    config = {"vocab_size": _vocab(tiny_qwen3), **QWEN3_5_CONFIG}
    path = _made_by_transformers("Qwen3_5ForCausalLM", config, tiny_qwen3, tmp_path / "q35")
    out = _converts_exactly(path, tmp_path, "qwen3_5", "qwen3")
    info = read_bundle(out)
    from ai_edge_litert.interpreter import Interpreter

    graph = Interpreter(model_content=info.read(info.models()["tf_lite_prefill_decode"]))
    inputs = set(graph.get_signature_runner("decode").get_input_details())
    assert {"kv_cache_c_0", "kv_cache_r_0", "kv_cache_k_3"} <= inputs  # convolution, recurrent, KV
    monkeypatch.setenv("LITERT_HOME", str(tmp_path / "home"))
    question = dict(QUESTIONS)["open"]
    engine = open_engine(out, 256)
    try:
        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        answers = [_runtime_answer(engine, question, 16, "open") for _ in range(2)]
    finally:
        engine.close()
    assert answers[0] and answers[1] == answers[0], answers


def test_qwen3_5_models_not_proven_are_refused_at_planning(tmp_path: Path) -> None:
    import litert_qwen3_5

    path = tmp_path / "moe"
    shutil.copytree(litert_qwen3_5.TINY_CHECKPOINT, path)
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["Qwen3_5MoeForCausalLM"]
    (path / "config.json").write_text(json.dumps(config))
    result = run_cli("convert", path, "-o", tmp_path / "x.litertlm", home=tmp_path / "home", timeout=120)
    _assert_clean_failure(result, tmp_path, "Qwen3_5MoeForCausalLM is not converted yet", "Qwen3_5ForCausalLM")
