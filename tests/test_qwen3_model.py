"""The Qwen3 plugin builds the model from config.json for every checkpoint layout.

Each variant is built through the installed plugin's hooks and compared with the
transformers reference on the same tokens: the logits must agree to float precision.
Variants: the shipped checkpoint (bf16, tied, no lm_head.weight), fp32 weights, sharded
safetensors with an index, a tied checkpoint that still carries lm_head.weight, an untied
checkpoint with its own lm_head, and an old-vintage config.json (rope_theta, torch_dtype).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from litert.checkpoint import load_checkpoint
from litert.plugins import get_plugins
from litert.types import ExportSettings

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def litert_logits(model, ids: list[int]) -> torch.Tensor:
    from litert_torch.generative.layers import kv_cache as kv_utils

    n, kv_len = len(ids), 64
    kv = kv_utils.KVCache.from_model_config(kv_len, model.config)
    mask = torch.triu(torch.full((n, kv_len), float("-inf")), diagonal=1)[None, None]
    out = model(torch.tensor([ids], dtype=torch.int), torch.arange(n, dtype=torch.int), kv, mask=mask)
    return out["logits"][0].float()


def reference_logits(path: Path, ids: list[int]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def build_through_plugin(path: Path):
    plugins = get_plugins()
    ckpt = load_checkpoint(path)
    name, claim = plugins.claim(ckpt)
    assert name == "qwen3"
    settings = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64)
    return plugins.call(name, "build_model", claim=claim, settings=settings)


def prompt_ids(tiny: Path) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny / "tokenizer.json")).encode(PROMPT, add_special_tokens=False).ids


def _rewrite(path: Path, state: dict[str, torch.Tensor], config_edit=None) -> None:
    (path / "model.safetensors").unlink()
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    if config_edit:
        config = json.loads((path / "config.json").read_text())
        config_edit(config)
        (path / "config.json").write_text(json.dumps(config, indent=2))


def variant_shipped(path: Path) -> None:
    pass


def variant_fp32(path: Path) -> None:
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    _rewrite(path, state, lambda c: c.update(dtype="float32"))


def variant_sharded(path: Path) -> None:
    state = load_file(str(path / "model.safetensors"))
    (path / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(path / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in names})
    index = {
        "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
        "weight_map": weight_map,
    }
    (path / "model.safetensors.index.json").write_text(json.dumps(index))


def variant_tied_with_lm_head(path: Path) -> None:
    state = load_file(str(path / "model.safetensors"))
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    _rewrite(path, state)


def variant_untied(path: Path) -> None:
    state = load_file(str(path / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    emb = state["model.embed_tokens.weight"]
    state["lm_head.weight"] = (emb.float() + 0.05 * torch.randn(emb.shape, generator=gen)).to(emb.dtype)
    _rewrite(path, state, lambda c: c.update(tie_word_embeddings=False))


def variant_old_config(path: Path) -> None:
    def old(c: dict) -> None:
        c["rope_theta"] = c.pop("rope_parameters")["rope_theta"]
        c["torch_dtype"] = c.pop("dtype")
        c.pop("layer_types", None)
        c["transformers_version"] = "4.51.0"

    config = json.loads((path / "config.json").read_text())
    old(config)
    (path / "config.json").write_text(json.dumps(config, indent=2))


VARIANTS = [
    variant_shipped,
    variant_fp32,
    variant_sharded,
    variant_tied_with_lm_head,
    variant_untied,
    variant_old_config,
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__.removeprefix("variant_"))
def test_built_model_matches_transformers(variant, tmp_path: Path, tiny_qwen3: Path) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen3, path)
    variant(path)
    ids = prompt_ids(tiny_qwen3)
    model = build_through_plugin(path)
    ours = litert_logits(model, ids)
    ref = reference_logits(path, ids)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=2e-4, rtol=1e-4), (ours - ref).abs().max()
    # And the prediction after the generation prompt is the trained answer's first token.
    assert int(ours[-1].argmax()) == int(ref[-1].argmax())


def test_untied_lm_head_is_really_used(tmp_path: Path, tiny_qwen3: Path) -> None:
    # Guard against a loader that silently ties: the untied head must change the logits.
    tied, untied = tmp_path / "tied", tmp_path / "untied"
    shutil.copytree(tiny_qwen3, tied)
    shutil.copytree(tiny_qwen3, untied)
    variant_untied(untied)
    ids = prompt_ids(tiny_qwen3)
    a = litert_logits(build_through_plugin(tied), ids)
    b = litert_logits(build_through_plugin(untied), ids)
    assert (a - b).abs().max() > 1e-2


def test_untied_checkpoint_without_lm_head_names_the_tensor(tmp_path: Path, tiny_qwen3: Path) -> None:
    from litert.errors import LitertError

    path = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen3, path)
    config = json.loads((path / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LitertError, match=r"lm_head\.weight"):
        build_through_plugin(path)


def test_model_config_follows_config_json_not_a_size_table(tiny_qwen3: Path) -> None:
    # Real Qwen3 sizes (from their config.json) map onto the litert-torch config field by field.
    from litert_qwen3.model import Qwen3

    sizes = {
        "0.6B": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                     num_key_value_heads=8, head_dim=128),
        "1.7B": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                     num_key_value_heads=8, head_dim=128),
        "4B": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                   num_key_value_heads=8, head_dim=128),
        "8B": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                   num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
    }  # fmt: skip
    base = json.loads((tiny_qwen3 / "config.json").read_text())
    for name, fields in sizes.items():
        config = {**base, "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1000000, **fields}
        config.pop("rope_parameters")
        ckpt = load_checkpoint(tiny_qwen3)
        ckpt = type(ckpt)(path=ckpt.path, config=config, source=name)
        mc = Qwen3(ckpt, ExportSettings()).model_config()
        attn = mc.block_config(0).attn_config
        assert (mc.embedding_dim, mc.num_layers, mc.vocab_size) == (
            fields["hidden_size"], fields["num_hidden_layers"], 151936), name  # fmt: skip
        assert (attn.num_heads, attn.num_query_groups, attn.head_dim, attn.rotary_base) == (
            fields["num_attention_heads"], 8, 128, 1000000), name  # fmt: skip
        assert mc.block_config(0).ff_config.intermediate_size == fields["intermediate_size"]
        assert mc.lm_head_share_weight_with_embedding == fields.get("tie_word_embeddings", True)
