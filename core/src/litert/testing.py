"""The plugin kit: a conformance suite any family plugin runs in its own test suite.

In your plugin's tests (pytest loads this module as a plugin through litert's `pytest11`
entry point, so the fixtures below are available everywhere):

    import litert_myfamily
    from litert.testing import PluginConformance

    class TestMyFamily(PluginConformance):
        plugin = "myfamily"                              # your entry-point name
        checkpoint = litert_myfamily.TINY_CHECKPOINT     # a tiny checkpoint you ship
        expected_answer = "Paris"                        # optional: a substring of the greedy answer

It checks, against the plugin as really installed (through its entry point): that the
plugin loads under the supported plugin API; that it claims its checkpoint and nobody else
does; that it does not claim the other installed families' tiny checkpoints; that every
hook returns a valid answer; that the checkpoint converts, runs in the LiteRT-LM runtime,
and passes the parity check against transformers.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from litert import hf, hookspecs, stress
from litert.types import QUANTIZATION_RECIPES, ExportSettings, PromptFormat, SamplerDefaults, TokenizerAssets

__all__ = ["PluginConformance", "litert_home", "litert_kit_converted"]


@pytest.fixture
def litert_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated LITERT_HOME for one test."""
    home = tmp_path / "litert-home"
    monkeypatch.setenv("LITERT_HOME", str(home))
    return home


@pytest.fixture(scope="class")
def litert_kit_converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The plugin's tiny checkpoint converted once per conformance class (its `settings`).

    As a full-size model is: with litert-torch's resource-constant size lowered to 4 KB,
    so that the tiny model's weights are streamed (litert.streaming), and lowered on two
    processes (litert.merging), so the parity check and the runtime test cover that path.
    """
    import os

    from litert.convert import ConvertOptions, convert

    kit = request.cls
    home = tmp_path_factory.mktemp("litert-kit-home")
    saved = {
        k: os.environ.get(k) for k in ("LITERT_HOME", "RESOURCE_CONSTANT_NUMEL_THRESHOLD", "LITERT_EXPORT_PROCESSES")
    }
    os.environ["LITERT_HOME"] = str(home)
    os.environ["RESOURCE_CONSTANT_NUMEL_THRESHOLD"] = "4096"
    os.environ["LITERT_EXPORT_PROCESSES"] = "2"
    try:
        s = kit.settings
        yield convert(
            str(kit.checkpoint),
            ConvertOptions(
                output=home / f"{kit.plugin}.litertlm",
                quantize=s.quantize,
                prefill_lengths=s.prefill_lengths,
                kv_cache_max_len=s.kv_cache_max_len,
                verify=True,
            ),
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _plugins() -> Any:
    from litert.plugins import get_plugins

    return get_plugins()


class PluginConformance:
    """Subclass with `plugin` and `checkpoint` set; every test below then runs for your plugin."""

    plugin: ClassVar[str]
    checkpoint: ClassVar[Path]
    prompt: ClassVar[str] = "What is the capital of France?"
    expected_answer: ClassVar[str | None] = None
    # Small export settings: conformance is about correctness, not the production export.
    settings: ClassVar[ExportSettings] = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=128, quantize="none")
    stress_refused: ClassVar[Mapping[str, str]] = {}
    """Stress variants (`litert.stress.VARIANT_NAMES`) the plugin refuses on purpose: name -> a
    regular expression its LitertError message matches. Every other variant must convert to
    logits equal to transformers'; a variant listed here must really be refused."""

    # -- loading -------------------------------------------------------------------------

    def test_plugin_loads_through_its_entry_point(self) -> None:
        rec = next((r for r in _plugins().records if r.name == self.plugin), None)
        assert rec is not None, f"no entry point named {self.plugin!r} in group 'litert' is installed"
        assert rec.status == "ok", f"{rec.status}: {rec.error}"
        assert rec.api_version in hookspecs.SUPPORTED_API_VERSIONS
        assert rec.families, "the manifest names no families"
        if rec.api_version >= 2:  # the rest have defaults; build_model too when the manifest names a model
            required = set(hookspecs.REQUIRED_HOOKS) - (
                {"build_model"} if rec.manifest and (rec.manifest.model or rec.manifest.native) else set()
            )
        else:
            required = set(hookspecs.CONVERSION_HOOKS) - {"check_settings"}
        missing = required - set(rec.hooks)
        assert not missing, f"hooks not implemented: {sorted(missing)}"

    # -- claiming ------------------------------------------------------------------------

    def _claim(self, path: Path) -> tuple[str, Any]:
        from litert.checkpoint import load_checkpoint

        return _plugins().claim(load_checkpoint(path))

    def test_claims_its_checkpoint_alone(self) -> None:
        name, claim = self._claim(self.checkpoint)
        assert name == self.plugin
        rec = _plugins().record(self.plugin)
        assert claim.family in rec.families

    def test_does_not_claim_other_families(self) -> None:
        """Another installed family's tiny checkpoint still goes to that family by default: this
        plugin does not claim it, or claims it with a lower priority than its owner does."""
        from litert.checkpoint import load_checkpoint

        plugins = _plugins()
        others = [
            (r.name, r.manifest.tiny_checkpoint)
            for r in plugins.loaded()
            if r.name != self.plugin
            and r.manifest is not None
            and r.manifest.tiny_checkpoint is not None
            and Path(r.manifest.tiny_checkpoint).is_dir()  # a plugin shipping none (yet) has nothing to claim
        ]
        for owner, path in others:
            ckpt = load_checkpoint(path)
            mine = [c for c in plugins.call(self.plugin, "resolve_checkpoint", checkpoint=ckpt) if c is not None]
            theirs = [c for c in plugins.call(owner, "resolve_checkpoint", checkpoint=ckpt) if c is not None]
            for claim in mine:
                assert theirs and claim.priority < max(c.priority for c in theirs), (
                    f"{self.plugin} claims {path}, the {owner} family's checkpoint, with priority {claim.priority}: "
                    "narrow resolve_checkpoint (e.g. on the tokenizer's special tokens), or claim with a lower "
                    "priority than the family it builds on"
                )

    # -- hooks ---------------------------------------------------------------------------

    def _call(self, hook: str, **kwargs: Any) -> Any:
        _, claim = self._claim(self.checkpoint)
        return _plugins().call(self.plugin, hook, claim=claim, **kwargs)

    def test_export_config_is_valid(self) -> None:
        settings = self._call("export_config")
        assert isinstance(settings, ExportSettings)
        assert settings.quantize in QUANTIZATION_RECIPES
        settings.validate()

    def test_tokenizer_assets_are_valid(self) -> None:
        assets = self._call("tokenizer_assets")
        assert isinstance(assets, TokenizerAssets)
        assert assets.kind in ("hf_tokenizer_json", "sentencepiece")
        assert assets.path.is_file()

    def test_prompt_format_is_valid(self) -> None:
        from litert import tokenizer

        fmt = self._call("prompt_format")
        assert isinstance(fmt, PromptFormat)
        assert fmt.stop_tokens, "no stop tokens"
        assets = self._call("tokenizer_assets")
        tokenizer.token_ids(assets, fmt.stop_tokens)  # each stop token is one token
        if fmt.start_token:
            tokenizer.token_ids(assets, (fmt.start_token,))
        assert fmt.model_prefix, "no model prefix: the runtime cannot prompt the model"

    def test_sampler_defaults_are_valid(self) -> None:
        sampler = self._call("sampler_defaults")
        assert isinstance(sampler, SamplerDefaults)
        sampler.validate()

    def test_build_model_gives_a_litert_torch_model(self) -> None:
        from litert.types import NativeExport

        module = self._call("build_model", settings=self.settings)
        if isinstance(module, NativeExport):  # built by litert-torch's transformers-native exporter
            return
        assert getattr(module, "config", None) is not None, "the module has no litert-torch ModelConfig"
        assert not module.training, "the model must be in eval mode"

    # -- stress variants: the model code against transformers, on checkpoints the author did not make --

    @pytest.mark.parametrize("variant", stress.VARIANT_NAMES)
    def test_stress_variant_matches_transformers(self, variant: str, tmp_path: Path) -> None:
        from litert.checkpoint import load_checkpoint
        from litert.errors import LitertError

        v = stress.variant_named(variant)
        rec = next((r for r in _plugins().records if r.name == self.plugin), None)
        native = rec is not None and rec.manifest is not None and rec.manifest.native is not None
        if native and not os.environ.get("LITERT_KIT_NATIVE_STRESS"):
            pytest.skip(
                "built by the transformers-native exporter: each variant is a real export (about half a "
                "minute), run with LITERT_KIT_NATIVE_STRESS=1 (`nox -s stress`)"
            )
        api = (rec.api_version if rec is not None else None) or 1
        if api < v.since_api:
            pytest.skip(f"{variant} came with plugin API {v.since_api}; {self.plugin} declares API {api}")
        base = hf.text_config(load_checkpoint(self.checkpoint).config)
        if not v.applies(base):
            pytest.skip(f"{variant} ({v.description}) does not apply to {self.checkpoint.name}")
        try:
            path = stress.make_variant(self.checkpoint, v, tmp_path / variant)
        except stress.NotApplicable as exc:
            pytest.skip(str(exc))
        refused = self.stress_refused.get(variant)
        try:
            if native:  # the exported graph is the model code: compared after a real export
                result = stress.compare_native(self.plugin, path, tmp_path / f"{variant}-export")
            else:
                result = stress.compare(self.plugin, path)
        except LitertError as exc:
            assert refused is not None, (
                f"{self.plugin} refuses {variant} ({v.description}): {exc}. If that is deliberate, list it in "
                "stress_refused with the message; transformers computes this checkpoint"
            )
            assert re.search(refused, str(exc)), f"refused with an unexpected message: {exc}"
            return
        assert refused is None, f"{variant} is listed in stress_refused but converts; remove it from the list"
        assert result.ok, f"{self.plugin} computes other logits than transformers on {variant} ({v.description}): " + (
            result.describe()
        )

    # -- end to end ----------------------------------------------------------------------

    def test_converts_and_passes_parity(self, litert_kit_converted: Any) -> None:
        converted = litert_kit_converted
        assert converted.path.is_file() and converted.size > 0
        report = converted.parity
        assert report is not None and report.passed, report.table() if report else "not verified"
        assert dataclasses.asdict(converted.plan.settings)["quantize"] == self.settings.quantize

    def test_runs_in_litert_lm(self, litert_kit_converted: Any) -> None:
        from litert.runtime import Chat, RunOptions

        with Chat(litert_kit_converted.path, RunOptions(temperature=0.0, max_tokens=32)) as chat:
            answer = "".join(chat.send(self.prompt))
        assert answer.strip(), "the model answered nothing"
        if self.expected_answer is not None:
            assert self.expected_answer in answer
