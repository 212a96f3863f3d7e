"""Families built by litert-torch's transformers-native exporter (LFM2, Gemma 4), and Qwen3.5's refusal.

The checkpoints here are made by transformers from a config with weights re-drawn away
from their initial values (not by the plugins' tiny trainers), converted with `litert
convert --quantize none` through the real exporter, verified against transformers and run
in the real LiteRT-LM runtime.
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
