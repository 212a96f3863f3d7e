"""The hook contract: exactly seven hookspecs, typed and documented; claims arbitrated so
that exactly one plugin proceeds; the per-claim hooks are asked of the claimer only."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from litert import hookimpl, hookspecs
from litert.checkpoint import load_checkpoint
from litert.errors import LitertError
from litert.plugins import get_plugins
from litert.types import Claim, ExportSettings, PromptFormat, SamplerDefaults, TokenizerAssets


def test_exactly_seven_documented_typed_hooks() -> None:
    specs = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "litert_spec")}
    assert specs == set(hookspecs.CONVERSION_HOOKS)
    assert len(specs) == 7
    for name in specs:
        fn = getattr(hookspecs, name)
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, name
        for param in sig.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, (name, param.name)
            assert f":param {param.name}:" in (fn.__doc__ or ""), (name, param.name)
        assert ":return:" in fn.__doc__


def test_per_claim_hooks_return_dataclasses(tiny_qwen3: Path) -> None:
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(tiny_qwen3))
    assert isinstance(claim, Claim) and claim.family == "qwen3" and claim.architecture == "Qwen3ForCausalLM"
    settings = plugins.call(name, "export_config", claim=claim)
    assert settings == ExportSettings(
        prefill_lengths=(8, 64, 128, 256, 512, 1024), kv_cache_max_len=1280, quantize="dynamic_int8",
        mask_as_input=True, transpose_kv_cache=True,
    )  # fmt: skip
    assert plugins.call(name, "tokenizer_assets", claim=claim) == TokenizerAssets(
        "hf_tokenizer_json", tiny_qwen3.resolve() / "tokenizer.json"
    )
    fmt = plugins.call(name, "prompt_format", claim=claim)
    assert isinstance(fmt, PromptFormat)
    assert fmt.stop_tokens == ("<|im_end|>", "<|endoftext|>")
    from litert_qwen3.chat_template import stable_history_template

    original = json.loads((tiny_qwen3 / "tokenizer_config.json").read_text())["chat_template"]
    assert fmt.chat_template == stable_history_template(original) != original
    assert plugins.call(name, "sampler_defaults", claim=claim) == SamplerDefaults(0.6, 0.95, 20)


def test_sampler_defaults_without_generation_config(tmp_path: Path, tiny_qwen3: Path) -> None:
    import shutil

    shutil.copytree(tiny_qwen3, tmp_path / "c")
    (tmp_path / "c" / "generation_config.json").unlink()
    gen = {"temperature": 0.7, "top_p": 0.8, "top_k": 40, "do_sample": True}
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(tmp_path / "c"))
    assert plugins.call(name, "sampler_defaults", claim=claim) == SamplerDefaults(0.6, 0.95, 20)
    (tmp_path / "c" / "generation_config.json").write_text(json.dumps(gen))
    name, claim = plugins.claim(load_checkpoint(tmp_path / "c"))
    assert plugins.call(name, "sampler_defaults", claim=claim) == SamplerDefaults(0.7, 0.8, 40)


class _Greedy:
    """A throwaway second plugin that claims every checkpoint."""

    @hookimpl
    def resolve_checkpoint(self, checkpoint):
        return Claim(family="greedy", checkpoint=checkpoint, architecture="*")

    @hookimpl
    def export_config(self, claim):
        return ExportSettings(quantize="none")


def test_two_claims_name_both_and_family_chooses(tiny_qwen3: Path) -> None:
    plugins = get_plugins()
    from litert.plugins import PluginRecord

    plugins.pm.register(_Greedy(), name="greedy")
    plugins.records.append(PluginRecord("greedy", "litert-greedy", "9.9", "tests:_Greedy"))
    try:
        ckpt = load_checkpoint(tiny_qwen3)
        with pytest.raises(LitertError) as err:
            plugins.claim(ckpt)
        assert "litert-qwen3 (qwen3) and litert-greedy (greedy) both claim" in err.value.message
        assert "--family" in err.value.hint
        name, claim = plugins.claim(ckpt, family="qwen3")
        assert name == "qwen3"
        # The per-claim hook is asked of the claimer only: the greedy plugin's "none" never wins.
        assert plugins.call(name, "export_config", claim=claim).quantize == "dynamic_int8"
        assert plugins.call("greedy", "export_config", claim=claim).quantize == "none"
    finally:
        plugins.pm.unregister(name="greedy")
        plugins.records.pop()
