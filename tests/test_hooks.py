"""One test per hook: what the core does with each answer. Throwaway plugins are
registered in-process and unregistered afterwards (the installed plugins are tested
through their entry points elsewhere). A meta-test fails when a hook has no
documentation section or no test here."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from litert import (
    Claim,
    ExportSettings,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    TokenizerAssets,
    hookimpl,
    hookspecs,
)
from litert.checkpoint import load_checkpoint
from litert.convert import ConvertOptions, plan_conversion
from litert.errors import LitertError
from litert.plugins import PluginRecord, get_plugins

ROOT = Path(__file__).resolve().parent.parent


class Toy:
    """Claims Qwen3 checkpoints under the family "toy", with answers the tests vary."""

    def __init__(self, **answers):
        self.answers = answers

    @hookimpl
    def resolve_checkpoint(self, checkpoint):
        if "Qwen3ForCausalLM" in checkpoint.architectures:
            return Claim(family="toy", checkpoint=checkpoint, architecture="Qwen3ForCausalLM")
        return None

    @hookimpl
    def export_config(self, claim):
        return self.answers.get("export_config", ExportSettings(prefill_lengths=(8,), kv_cache_max_len=128))

    @hookimpl
    def tokenizer_assets(self, claim):
        default = TokenizerAssets("hf_tokenizer_json", claim.checkpoint.path / "tokenizer.json")
        return self.answers.get("tokenizer_assets", default)

    @hookimpl
    def prompt_format(self, claim):
        default = PromptFormat("<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>\n",
                               stop_tokens=("<|im_end|>",), chat_template="{{ messages[0].content }}")  # fmt: skip
        return self.answers.get("prompt_format", default)

    @hookimpl
    def sampler_defaults(self, claim):
        return self.answers.get("sampler_defaults", SamplerDefaults(0.5, 0.9, 10))

    @hookimpl
    def build_model(self, claim, settings):
        return self.answers.get("build_model")

    @hookimpl
    def check_settings(self, claim, settings):
        limit = self.answers.get("kv_limit")
        if limit is not None and settings.kv_cache_max_len > limit:
            raise LitertError(f"toy models hold at most {limit} tokens", f"pass --kv-cache-max-len {limit}")


@pytest.fixture
def toy():
    plugins = get_plugins()
    registered = []

    def register(**answers):
        plugin = Toy(**answers)
        plugins.pm.register(plugin, name="toy")
        plugins.records.append(PluginRecord("toy", "litert-toy", "0.0.1", "tests:Toy", families=("toy",)))
        registered.append(plugin)
        return plugin

    yield register
    if registered:
        plugins.pm.unregister(name="toy")
        plugins.records[:] = [r for r in plugins.records if r.name != "toy"]


def plan(tiny_qwen3: Path, **options):
    return plan_conversion(get_plugins(), load_checkpoint(tiny_qwen3), ConvertOptions(family="toy", **options))


def test_hook_resolve_checkpoint(toy, tiny_qwen3: Path, tiny_gemma3: Path) -> None:
    toy()
    plugins = get_plugins()
    # Two claims for a Qwen3 checkpoint: named, and resolved by --family.
    with pytest.raises(LitertError, match="litert-qwen3 \\(qwen3\\) and litert-toy \\(toy\\) both claim"):
        plugins.claim(load_checkpoint(tiny_qwen3))
    assert plugins.claim(load_checkpoint(tiny_qwen3), family="toy")[0] == "toy"
    # None is no claim: the Gemma3 checkpoint still goes to gemma3 alone.
    assert plugins.claim(load_checkpoint(tiny_gemma3))[0] == "gemma3"


def test_hook_export_config(toy, tiny_qwen3: Path) -> None:
    toy(export_config=ExportSettings(prefill_lengths=(8, 32), kv_cache_max_len=128, quantize="fp16"))
    assert plan(tiny_qwen3).settings == ExportSettings(prefill_lengths=(8, 32), kv_cache_max_len=128, quantize="fp16")
    # The user's options override the family's defaults, field by field.
    p = plan(tiny_qwen3, quantize="none", prefill_lengths=(16, 4, 16))
    assert (p.settings.quantize, p.settings.prefill_lengths, p.settings.kv_cache_max_len) == ("none", (4, 16), 128)
    with pytest.raises(LitertError, match="does not fit a KV cache of 128"):
        plan(tiny_qwen3, prefill_lengths=(256,))


def test_hook_build_model(toy, tiny_qwen3: Path, tmp_path: Path) -> None:
    import torch

    from litert.lowering import lower

    toy(build_model=torch.nn.Linear(2, 2))
    p = plan(tiny_qwen3)
    module = get_plugins().call("toy", "build_model", claim=p.claim, settings=p.settings)
    with pytest.raises(LitertError, match="without a `config`"):
        lower(module, p.settings, tmp_path)


def test_hook_check_settings(toy, tiny_qwen3: Path) -> None:
    # Asked with the final settings (the user's overrides applied), before any build.
    toy(kv_limit=256)
    assert plan(tiny_qwen3, kv_cache_max_len=256).settings.kv_cache_max_len == 256
    with pytest.raises(LitertError, match="toy models hold at most 256 tokens"):
        plan(tiny_qwen3, kv_cache_max_len=512)


def test_hook_tokenizer_assets(toy, tiny_qwen3: Path) -> None:
    toy()
    p = plan(tiny_qwen3)
    from tokenizers import Tokenizer

    assert p.stop_token_ids == [Tokenizer.from_file(str(tiny_qwen3 / "tokenizer.json")).token_to_id("<|im_end|>")]
    get_plugins().pm.unregister(name="toy")
    get_plugins().records.pop()
    toy(tokenizer_assets=TokenizerAssets("sentencepiece", tiny_qwen3 / "tokenizer.model"))
    with pytest.raises(LitertError, match=r"no tokenizer file tokenizer\.model"):
        plan(tiny_qwen3)


def test_hook_prompt_format(toy, tiny_qwen3: Path) -> None:
    from litert.templates import MARKER

    fmt = PromptFormat("u", "/u", "m", "/m", stop_tokens=("<|im_end|>", "<|endoftext|>"), start_token="<|endoftext|>",
                       chat_template="{{ messages[0].content }}")  # fmt: skip
    toy(prompt_format=fmt)
    p = plan(tiny_qwen3)
    assert p.chat_template.startswith(MARKER) and p.chat_template.endswith("{{ messages[0].content }}")
    assert len(p.stop_token_ids) == 2 and p.start_token_id == p.stop_token_ids[1]
    get_plugins().pm.unregister(name="toy")
    get_plugins().records.pop()
    toy(prompt_format=dataclasses.replace(fmt, stop_tokens=("<eos>",)))
    with pytest.raises(LitertError, match=r"stop token .<eos>. is not a token of tokenizer\.json"):
        plan(tiny_qwen3)


def test_hook_sampler_defaults(toy, tiny_qwen3: Path) -> None:
    toy()
    assert plan(tiny_qwen3).sampler == SamplerDefaults(0.5, 0.9, 10)
    get_plugins().pm.unregister(name="toy")
    get_plugins().records.pop()
    toy(sampler_defaults=SamplerDefaults(0.5, 2.0, 10))
    with pytest.raises(LitertError, match="top_p must be in"):
        plan(tiny_qwen3)


class Minimal:
    """A plugin on API 2 that implements only prompt_format (its manifest names the model)."""

    LITERT_PLUGIN = PluginManifest(
        families=("minimal",), architectures=("Qwen3ForCausalLM",), api_version=2, priority=5,
        sampler=SamplerDefaults(0.3, 0.8, 7), model="litert_qwen3.model:Qwen3",
    )  # fmt: skip

    @hookimpl
    def prompt_format(self, claim):
        return PromptFormat("u", "/u", "m", "/m", stop_tokens=("<|im_end|>",))


def test_defaults_fill_every_hook_a_v2_plugin_leaves_out(tiny_qwen3: Path) -> None:
    plugins = get_plugins()
    plugin = Minimal()
    plugins.pm.register(plugin, name="minimal")
    plugins.records.append(PluginRecord("minimal", "litert-minimal", "0.0.1", "tests:Minimal", module=plugin))
    try:
        # The manifest's claim, with its priority (5 beats litert-qwen3's 0).
        name, claim = plugins.claim(load_checkpoint(tiny_qwen3))
        assert (name, claim.family, claim.plugin, claim.priority) == ("minimal", "minimal", "minimal", 5)
        p = plan_conversion(plugins, load_checkpoint(tiny_qwen3), ConvertOptions(kv_cache_max_len=2048))
        assert p.settings == ExportSettings(kv_cache_max_len=2048)
        assert p.tokenizer == TokenizerAssets("hf_tokenizer_json", tiny_qwen3.resolve() / "tokenizer.json")
        # generation_config.json's sampling wins over the manifest's where it sets a value
        gen = json.loads((tiny_qwen3 / "generation_config.json").read_text())
        assert p.sampler.temperature == gen.get("temperature", 0.3)
        # build_model and check_settings come from the manifest's model class
        module = plugins.call("minimal", "build_model", claim=p.claim, settings=p.settings)
        assert type(module).__name__ == "Decoder" and module.config.num_layers == 2
    finally:
        plugins.pm.unregister(name="minimal")
        plugins.records[:] = [r for r in plugins.records if r.name != "minimal"]


def test_every_hook_is_documented_and_tested() -> None:
    docs = (ROOT / "docs" / "hooks.md").read_text()
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for hook in hookspecs.CONVERSION_HOOKS:
        assert re.search(rf"^## `{hook}\(", docs, re.M), f"docs/hooks.md has no section for {hook}"
        fn = getattr(hookspecs, hook)
        for param in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
            section = docs.split(f"## `{hook}(")[1].split("\n## ")[0]
            assert f"| `{param}` |" in section, f"docs/hooks.md does not describe {hook}'s parameter {param}"
        assert f"def test_hook_{hook}(" in tests, f"no test_hook_{hook} in tests/"
