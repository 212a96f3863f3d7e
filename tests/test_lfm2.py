"""LFM2 in LiteRT-LM: a checkpoint made by transformers (pad id 320, not the runtime's 0)
converted through the real exporter, verified against transformers, run in the real runtime;
the two faults litert mends in the export (the runtime's padding, a conversation's stale
state) each shown by a test that fails without its shim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_native import _made_by_transformers, _vocab

from conftest import run_cli
from litert.bundle import read_bundle


@pytest.fixture(scope="module")
def tiny_lfm2() -> Path:
    import litert_lfm2

    return litert_lfm2.TINY_CHECKPOINT


@pytest.fixture(scope="module")
def lfm2_by_other_hands(tmp_path_factory: pytest.TempPathFactory, tiny_lfm2: Path) -> tuple[Path, Path, Path]:
    """An LFM2 made by transformers (convolution first and last, attention between, 2 KV heads
    of 4, untied head), converted `--quantize none --no-verify`: (checkpoint, bundle, home).
    Its tokenizer pads with `<|endoftext|>` (id 320), not 0 as LiteRT-LM pads a prefill chunk."""
    tmp = tmp_path_factory.mktemp("lfm2-by-other-hands")
    config = {
        "vocab_size": _vocab(tiny_lfm2), "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "layer_types": ["conv", "full_attention", "conv",
        "full_attention"], "block_auto_adjust_ff_dim": False, "tie_word_embeddings": False,
        "max_position_embeddings": 1024, "bos_token_id": None, "pad_token_id": None, "eos_token_id": 322,
    }  # fmt: skip
    path = _made_by_transformers("Lfm2ForCausalLM", config, tiny_lfm2, tmp / "lfm2")
    out, home = tmp / "out.litertlm", tmp / "home"
    result = run_cli("convert", path, "--quantize", "none", "--no-verify", "-o", out, home=home)
    assert result.returncode == 0, result.stderr
    return path, out, home


def test_lfm2_by_other_hands_converts_exactly(lfm2_by_other_hands: tuple[Path, Path, Path]) -> None:
    path, out, home = lfm2_by_other_hands
    info = read_bundle(out)
    assert info.llm.llm_model_type.WhichOneof("model_type") == "lfm2"
    from ai_edge_litert.interpreter import Interpreter

    decode = Interpreter(model_content=info.read(info.models()["tf_lite_prefill_decode"])).get_signature_runner(
        "decode"
    )
    assert {"kv_cache_c_0", "kv_cache_c_2"} <= set(decode.get_input_details())  # convolution states beside the KV
    # The exporter's executor metadata travels with the models: every state buffer by kind.
    from litert_lm_builder.runtime.proto import executor_metadata_pb2

    meta = executor_metadata_pb2.ExecutorMetadata.FromString(info.read_section("ExecutorMetadataProto"))
    kinds = {b.decode_input_name: b.type for b in meta.llm_executor_metadata.state_buffers}
    assert kinds["kv_cache_c_0"] == executor_metadata_pb2.StateBuffer.TYPE_LINEAR_ATTENTION
    assert kinds["kv_cache_k_1"] == executor_metadata_pb2.StateBuffer.TYPE_GLOBAL_KEY_CACHE
    verified = run_cli("verify", path, out, "--json", "--tokens", "16", home=home)
    report = json.loads(verified.stdout)
    # The bundle's graph is transformers' computation, token for token (teacher-forced, float),
    # and LiteRT-LM's greedy answers are transformers' whole, on every prompt.
    assert report["top1"] == 1.0 and report["max_abs_logit_diff"] < 1e-3, report
    assert report["passed"], report["failures"]
    assert all(p["runtime_follows_whole"] for p in report["prompts"]), report["prompts"]


def _runtime_prefill(runners: dict, tokens: list[int], length: int, state: dict) -> dict:
    """One prefill chunk as LiteRT-LM 0.18.1 fills it: the tokens, then zeros — token ids and
    positions alike — and the padding rows masked out."""
    import numpy as np

    runner = runners[f"prefill_{length}"]
    context = runner.get_input_details()["mask"]["shape"][3]
    ids = np.zeros((1, length), np.int32)
    ids[0, : len(tokens)] = tokens
    positions = np.zeros(length, np.int32)
    positions[: len(tokens)] = range(len(tokens))
    mask = np.full((1, 1, length, context), -0.7 * np.finfo(np.float32).max, np.float32)
    for i in range(len(tokens)):
        mask[0, 0, i, : i + 1] = 0
    return runner(tokens=ids, input_pos=positions, mask=mask, **state)


def test_lfm2_state_after_a_padded_prefill_chunk_is_the_prompts(lfm2_by_other_hands: tuple[Path, Path, Path]) -> None:
    # LiteRT-LM pads a prefill chunk with token 0 at position 0. The exporter told padding
    # from the prompt by `tokens != pad_token_id` (320 here): the zeros entered the
    # convolution states (off by ~1.0), and the runtime's answers parted from transformers'.
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    info = read_bundle(lfm2_by_other_hands[1])
    model = Interpreter(model_content=info.read(info.models()["tf_lite_prefill_decode"]))
    runners = {name: model.get_signature_runner(name) for name in model.get_signature_list()}
    decode = runners["decode"]
    context = decode.get_input_details()["mask"]["shape"][3]
    empty = {n: np.zeros(d["shape"], d["dtype"]) for n, d in decode.get_input_details().items() if "kv_cache" in n}
    prompt = [17, 45, 99, 3]
    one_by_one = dict(empty)
    for position, token in enumerate(prompt):
        mask = np.full((1, 1, 1, context), -0.7 * np.finfo(np.float32).max, np.float32)
        mask[0, 0, 0, : position + 1] = 0
        step = decode(
            tokens=np.array([[token]], np.int32), input_pos=np.array([position], np.int32), mask=mask, **one_by_one
        )
        one_by_one = {k: v for k, v in step.items() if k != "logits"}
    padded = _runtime_prefill(runners, prompt, 8, empty)
    for name in ("kv_cache_c_0", "kv_cache_c_2"):
        np.testing.assert_allclose(padded[name], one_by_one[name], atol=1e-5, err_msg=name)
    # A session starts at position 0 on whatever state the last one left (below): there the
    # graph starts from an empty state, whatever it is given.
    stale = {k: v + 1.0 if "_c_" in k else v for k, v in padded.items()}
    again = _runtime_prefill(runners, prompt, 8, stale)
    for name in ("kv_cache_c_0", "kv_cache_c_2"):
        np.testing.assert_allclose(again[name], padded[name], atol=1e-5, err_msg=name)


def test_lfm2_conversation_after_conversation_answers_the_same(
    lfm2_by_other_hands: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LiteRT-LM 0.18.1 starts a conversation at position 0 without clearing the state the last
    # one left; attention masks stale KV entries away, a convolution state is not masked. The
    # same question asked twice on one engine was answered differently from the second token.
    import litert_lm

    from litert.runtime import open_engine
    from litert.verify import QUESTIONS, _runtime_answer

    _, out, home = lfm2_by_other_hands
    monkeypatch.setenv("LITERT_HOME", str(home))
    question = dict(QUESTIONS)["open"]
    engine = open_engine(out, 256)
    try:
        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        first = _runtime_answer(engine, question, 16, "open")
        after_itself = _runtime_answer(engine, question, 16, "open")
        _runtime_answer(engine, dict(QUESTIONS)["turns"], 16, "turns")
        after_another = _runtime_answer(engine, question, 16, "open")
    finally:
        engine.close()
    assert first and after_itself == first and after_another == first, (first, after_itself, after_another)


def test_verify_lays_a_runtime_only_parting_on_the_runtime(
    lfm2_by_other_hands: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Broken on purpose as litert-torch 0.10.0 alone exports LFM2: every entry of a prefill
    # chunk counted as the prompt's, so LiteRT-LM's zero padding enters the convolution state.
    # litert's .tflite runner never pads: the bundle's graph still computes transformers'
    # logits, while the runtime's answers part from them — on the raw prompt too, which is how
    # the report tells the runtime's side from a chat template's.
    import torch

    import litert.native
    from litert.convert import ConvertOptions, convert
    from litert.verify import verify

    monkeypatch.setenv("LITERT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        litert.native, "valid_by_position", lambda input_pos: torch.ones((1, input_pos.shape[0]), dtype=torch.bool)
    )
    checkpoint, out = lfm2_by_other_hands[0], tmp_path / "padding-in-the-state.litertlm"
    convert(str(checkpoint), ConvertOptions(output=out, quantize="none", verify=False))
    report = verify(checkpoint, out, tokens=16).as_json()
    assert report["top1"] == 1.0 and report["max_abs_logit_diff"] < 1e-3, report
    assert not report["passed"], report
    parted = [p for p in report["prompts"] if not p["runtime_follows_whole"]]
    assert parted and all(p["raw_follows_whole"] is False for p in parted), report["prompts"]
