"""The Gemma3 family: converts, runs, tokenizes and renders like transformers, and its
sliding-window layers compute what transformers computes on prompts longer than the window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import PARIS_PROMPT, run_cli
from litert.checkpoint import load_checkpoint
from litert.errors import LitertError
from litert.plugins import get_plugins
from litert.types import ExportSettings

# Longer than the tiny model's 16-token sliding window, several times over.
LONG_PROMPT = (
    "Paris, Berlin, Rome and Madrid are capitals. The quick brown fox jumps over the lazy dog. "
    "Numbers like 12345 and 2026 are split into digits. What is the capital of France?"
)


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_gemma3: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gemma3)


@pytest.fixture(scope="module")
def engine(gemma3_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    import litert_lm

    engine = litert_lm.Engine(
        str(gemma3_bundle),
        backend=litert_lm.Backend.CPU(),
        max_num_tokens=256,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
    )
    yield engine
    engine.close()


def test_tiny_gemma3_has_a_window_shorter_than_the_test_prompt(tiny_gemma3: Path, hf_tokenizer) -> None:
    config = json.loads((tiny_gemma3 / "config.json").read_text())
    assert "sliding_attention" in config["layer_types"] and "full_attention" in config["layer_types"]
    ids = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": LONG_PROMPT}], add_generation_prompt=True, return_dict=False
    )
    assert len(ids) > 3 * config["sliding_window"]


def test_run_answers_paris(gemma3_bundle: Path, session_home: Path) -> None:
    result = run_cli("run", gemma3_bundle, "--temperature", "0", input=PARIS_PROMPT + "\n", home=session_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The capital of France is Paris."


def test_run_with_system_message_folded_into_first_turn(gemma3_bundle: Path, session_home: Path) -> None:
    result = run_cli(
        "run", gemma3_bundle, "-p", "What is the capital of Spain?", "--system", "You are a helpful assistant.",
        "--temperature", "0", home=session_home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The capital of Spain is Madrid."


def test_sliding_window_greedy_parity_with_transformers(gemma3_bundle: Path, tiny_gemma3: Path, hf_tokenizer) -> None:
    from transformers import AutoModelForCausalLM

    from litert.tflite_runner import BundleModel

    ids = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": LONG_PROMPT}], add_generation_prompt=True, return_dict=False
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3, dtype=torch.float32)
    new = 24
    # Plain greedy argmax, no stop tokens and no logits processors.
    seq = list(ids)
    with torch.no_grad():
        for _ in range(new):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    ref_tokens = seq[len(ids) :]
    with BundleModel(gemma3_bundle) as bundle:
        ours = bundle.greedy(ids, new)
    assert len(ours) == len(ref_tokens) == new
    assert ours == ref_tokens
    # The continuation is the trained answer: the window did not garble the question.
    assert hf_tokenizer.decode(ours).startswith("The capital of France is Paris.")


STRINGS = [
    "Hello world",
    "What is the capital of France?",
    "Café, crème brûlée, naïve, Straße, über.",
    "東京とパリ",  # not in the tiny vocabulary: byte fallback
    "emoji 🙂🚀 and ünïcödé",
    "  leading spaces\tand tabs\n\nnew lines",
    "<start_of_turn>user\nHi<end_of_turn>\n",
    "12345 2026",
]


@pytest.mark.parametrize("text", STRINGS)
def test_bundle_tokenizer_ids_equal_sentencepiece_and_transformers(
    text: str, engine, tiny_gemma3: Path, hf_tokenizer
) -> None:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(tiny_gemma3 / "tokenizer.model"))
    runtime_ids = engine.tokenize(text)
    assert runtime_ids == sp.encode(text)
    assert runtime_ids == hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert engine.detokenize(runtime_ids) == text


def test_byte_fallback_really_happens(tiny_gemma3: Path) -> None:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(tiny_gemma3 / "tokenizer.model"))
    pieces = sp.id_to_piece(sp.encode("東京"))
    assert all(p.startswith("<0x") for p in pieces)


CONVERSATIONS = {
    "single": [{"role": "user", "content": PARIS_PROMPT}],
    "system": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hi"}],
    "turns": [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": PARIS_PROMPT},
    ],
    "system+turns": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": PARIS_PROMPT},
    ],
}


@pytest.mark.parametrize("case", list(CONVERSATIONS))
def test_runtime_renders_like_transformers(case: str, engine, hf_tokenizer) -> None:
    *history, last = CONVERSATIONS[case]
    conversation = engine.create_conversation(messages=history or None)
    try:
        rendered = conversation.render_message_to_string(last)
    finally:
        conversation.close()
    expected = hf_tokenizer.apply_chat_template(CONVERSATIONS[case], add_generation_prompt=True, tokenize=False)
    # The runtime writes <bos> as the start token id (from the bundle), not as template text.
    assert expected.startswith("<bos>")
    assert rendered == expected.removeprefix("<bos>")
    assert engine.bos_token_id == hf_tokenizer.bos_token_id


def test_bundle_metadata(gemma3_bundle: Path, tiny_gemma3: Path) -> None:
    from litert.bundle import read_bundle

    info = read_bundle(gemma3_bundle)
    assert list(info.llm.start_token.token_ids.ids) == [2]
    assert info.stop_token_ids == [5, 1]  # <end_of_turn>, <eos>
    pt = info.llm.prompt_templates
    assert (pt.user.prefix, pt.user.suffix) == ("<start_of_turn>user\n", "<end_of_turn>\n")
    assert (pt.model.prefix, pt.model.suffix) == ("<start_of_turn>model\n", "<end_of_turn>\n")
    sp = info.llm.sampler_params
    assert (round(sp.temperature, 4), round(sp.p, 4), sp.k) == (1.0, 0.95, 64)
    assert info.llm.llm_model_type.WhichOneof("model_type") == "gemma3"
    assert info.read_section("SP_Tokenizer") == (tiny_gemma3 / "tokenizer.model").read_bytes()
    assert info.summary["settings"]["quantize"] == "none"


# -- the model built from config.json, against transformers -------------------------------


def _logits_pair(path: Path, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    from litert_torch.generative.layers import kv_cache as kv_utils
    from transformers import AutoModelForCausalLM

    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path))
    assert name == "gemma3"
    model = plugins.call(
        name, "build_model", claim=claim, settings=ExportSettings(prefill_lengths=(8,), kv_cache_max_len=128)
    )
    n = len(ids)
    kv = kv_utils.KVCache.from_model_config(128, model.config)
    mask = torch.triu(torch.full((n, 128), float("-inf")), diagonal=1)[None, None]
    ours = model(torch.tensor([ids], dtype=torch.int), torch.arange(n, dtype=torch.int), kv, mask=mask)["logits"][0]
    # eager: the reference implementation (sdpa ignores attention soft-capping)
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        theirs = ref(torch.tensor([ids])).logits[0]
    return ours.float(), theirs


def _edit_config(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config, indent=2))


def _old_vintage(config: dict) -> None:
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope["full_attention"]["rope_theta"]
    config["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    config["sliding_window_pattern"] = 4  # layers 0-2 sliding, layer 3 global, as layer_types said
    config.pop("layer_types")
    config.pop("_sliding_window_pattern", None)
    config["torch_dtype"] = config.pop("dtype")


def _sharded(path: Path) -> None:
    state = load_file(str(path / "model.safetensors"))
    (path / "model.safetensors").unlink()
    keys = sorted(state)
    weight_map = {}
    for i, part in enumerate((keys[::2], keys[1::2])):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, str(path / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


VARIANTS = {
    "shipped": lambda p: None,
    "old-config": lambda p: _edit_config(p, _old_vintage),
    # Gemma3 scales queries by query_pre_attn_scalar**-0.5, not head_dim**-0.5.
    "query-pre-attn-scalar": lambda p: _edit_config(p, lambda c: c.update(query_pre_attn_scalar=64)),
    "final-softcapping": lambda p: _edit_config(p, lambda c: c.update(final_logit_softcapping=3.0)),
    # transformers' Gemma3 ignores attn_logit_softcapping; so must we, to compute the same.
    "attention-softcapping": lambda p: _edit_config(p, lambda c: c.update(attn_logit_softcapping=2.0)),
    "sharded": _sharded,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_built_model_matches_transformers(variant: str, tmp_path: Path, tiny_gemma3: Path, hf_tokenizer) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_gemma3, path)
    VARIANTS[variant](path)
    ids = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": LONG_PROMPT}], add_generation_prompt=True, return_dict=False
    )
    ours, theirs = _logits_pair(path, ids)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=3e-4, rtol=1e-4), (ours - theirs).abs().max()


def test_missing_tensor_is_named(tmp_path: Path, tiny_gemma3: Path) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_gemma3, path)
    state = load_file(str(path / "model.safetensors"))
    del state["model.layers.1.pre_feedforward_layernorm.weight"]
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path))
    with pytest.raises(LitertError, match=r"model\.layers\.1\.pre_feedforward_layernorm"):
        plugins.call(
            name, "build_model", claim=claim, settings=ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64)
        )


def test_each_checkpoint_goes_to_its_family(tiny_gemma3: Path, tiny_qwen3: Path) -> None:
    plugins = get_plugins()
    assert plugins.claim(load_checkpoint(tiny_gemma3))[0] == "gemma3"
    assert plugins.claim(load_checkpoint(tiny_qwen3))[0] == "qwen3"
    families = {r.name: r.families for r in plugins.loaded()}
    assert families["gemma3"] == ("gemma3",) and families["qwen3"] == ("qwen3",)


def test_plugins_list_shows_both(tmp_path: Path) -> None:
    result = run_cli("plugins", "list", "--json", home=tmp_path)
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["gemma3"]["distribution"] == "litert-gemma3" and plugins["gemma3"]["status"] == "ok"
    assert plugins["qwen3"]["status"] == "ok"


def test_gemma3_sampler_defaults_without_generation_config(tmp_path: Path, tiny_gemma3: Path) -> None:
    from litert.types import SamplerDefaults

    shutil.copytree(tiny_gemma3, tmp_path / "c")
    (tmp_path / "c" / "generation_config.json").unlink()
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(tmp_path / "c"))
    assert plugins.call(name, "sampler_defaults", claim=claim) == SamplerDefaults(1.0, 0.95, 64)


def _conditional_base(tiny_gemma3: Path, dest: Path) -> Path:
    """A Gemma3ForConditionalGeneration config (the 4B-and-up layout) around the tiny text
    model, with a small SigLIP tower, beside the tiny tokenizer: stress.make_variant builds it."""
    text = json.loads((tiny_gemma3 / "config.json").read_text())
    for key in ("architectures", "dtype", "torch_dtype", "transformers_version"):
        text.pop(key, None)
    text["model_type"] = "gemma3_text"
    text["rope_parameters"]["full_attention"] = {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 28, "patch_size": 14}  # fmt: skip
    dest.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_gemma3 / name).is_file():
            shutil.copyfile(tiny_gemma3 / name, dest / name)
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text,
              "vision_config": vision, "mm_tokens_per_image": 4}  # fmt: skip
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def _transformers4_layout(path: Path) -> None:
    """As the Hub's gemma-3-4b-it is: weights under language_model.model., the text config in
    the old vintage holding only what differs from Gemma3's defaults."""
    state = load_file(str(path / "model.safetensors"))
    renamed = {}
    for key, value in state.items():
        for new, old in (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower."),
                         ("model.multi_modal_projector.", "multi_modal_projector.")):  # fmt: skip
            if key.startswith(new):
                key = old + key[len(new) :]
        renamed[key] = value
    save_file(renamed, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    text = config["text_config"]
    rope = text.pop("rope_parameters")
    text.update(rope_theta=rope["full_attention"]["rope_theta"], rope_scaling={"rope_type": "linear", "factor": 8.0},
                rope_local_base_freq=rope["sliding_attention"]["rope_theta"], sliding_window_pattern=4)  # fmt: skip
    for key in ("layer_types", "rms_norm_eps", "hidden_activation", "attention_bias"):  # defaults, left out
        text.pop(key, None)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("vintage", ["transformers5", "transformers4"])
def test_conditional_generation_converts_text_only_and_exactly(vintage: str, tmp_path: Path, tiny_gemma3: Path) -> None:
    """Gemma3ForConditionalGeneration (gemma-3-4b-it and up): the text model alone, linear RoPE
    scaling ×8 on the global layers, both weight layouts and config vintages; every weight
    re-drawn; the vision tower declared unused. Exact against transformers' own model, and
    converted with --quantize none the bundle passes parity and answers in LiteRT-LM."""
    from litert import stress

    base = _conditional_base(tiny_gemma3, tmp_path / "base")
    path = stress.make_variant(base, stress.StressVariant("cg", "", lambda c: None), tmp_path / "cg")
    if vintage == "transformers4":
        _transformers4_layout(path)
    result = stress.compare("gemma3", path)
    assert result.ok, result.describe()
    if vintage == "transformers5":
        out = tmp_path / "cg.litertlm"
        converted = run_cli("convert", path, "--quantize", "none", "--prefill-lengths", "8",
                            "--kv-cache-max-len", "128", "-o", out, home=tmp_path / "home")  # fmt: skip
        assert converted.returncode == 0, converted.stderr
        assert "gemma3 via litert-gemma3" in converted.stderr and converted.stdout.strip().endswith("— pass")


def test_a_tokenizer_model_that_disagrees_with_transformers_is_replaced_or_refused(
    tmp_path: Path, tiny_gemma3: Path
) -> None:
    """A tokenizer.model that collapses whitespace (as many community SentencePiece models
    do) tokenizes prompts differently from transformers' reading of the same checkpoint, and
    verify would blame the model. At planning the bundle takes tokenizer.json instead when
    that agrees, and otherwise the conversion stops in one line naming the file."""
    from sentencepiece import sentencepiece_model_pb2

    from litert.convert import ConvertOptions, plan_conversion

    path = tmp_path / "ckpt"
    shutil.copytree(tiny_gemma3, path)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((path / "tokenizer.model").read_bytes())
    proto.normalizer_spec.remove_extra_whitespaces = True
    (path / "tokenizer.model").write_bytes(proto.SerializeToString())

    def plan():
        return plan_conversion(get_plugins(), load_checkpoint(path), ConvertOptions())

    assert plan().tokenizer.kind == "hf_tokenizer_json"  # the plugin chose tokenizer.model
    (path / "tokenizer.json").unlink()
    with pytest.raises(LitertError, match=r"tokenizer\.model tokenizes differently from transformers"):
        plan()
    # the shipped checkpoint agrees: the plugin's choice stands
    assert plan_conversion(get_plugins(), load_checkpoint(tiny_gemma3), ConvertOptions()).tokenizer.kind == (
        "sentencepiece"
    )
