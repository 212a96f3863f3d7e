"""The built-in answers to every hook a family plugin may leave out (plugin API 2).

Registered with the plugins as one more plugin, each hook `trylast`, so an answer of the
claiming plugin always wins and these only fill the gaps (datasette's default plugins).
The default claim (`resolve_checkpoint`) is the manifest's and is made in
`litert.plugins.PluginSet.claim`, since it needs the manifest of each plugin asked.
`build_model` answers the manifest's `native` export, else builds its `model` class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litert import hf
from litert.hookspecs import hookimpl
from litert.types import Claim, ExportSettings, PluginManifest, SamplerDefaults, TokenizerAssets

NAME = "litert.defaults"
"""The name the defaults are registered under."""

FALLBACK_SAMPLER = SamplerDefaults(temperature=1.0, top_p=1.0, top_k=40)
"""When neither generation_config.json nor the manifest says: transformers' own defaults
(temperature 1, top-p 1), with a top-k the runtime needs."""


class Defaults:
    """The default hook implementations; `manifest_of(name)` is a plugin's manifest (or None)."""

    def __init__(self, manifest_of: Callable[[str], PluginManifest | None]) -> None:
        self.manifest_of = manifest_of

    @hookimpl(trylast=True)
    def export_config(self, claim: Claim) -> ExportSettings:
        return ExportSettings()

    def _model(self, claim: Claim) -> Any:
        """The manifest's ClassicDecoder subclass, imported now, or None."""
        import importlib

        target = getattr(self.manifest_of(claim.plugin), "model", None)
        if not target:
            return None
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)

    @hookimpl(trylast=True)
    def check_settings(self, claim: Claim, settings: ExportSettings) -> None:
        if getattr(self.manifest_of(claim.plugin), "native", None) is not None:
            from litert.native import exporter_recipe

            exporter_recipe(settings.quantize)  # refused at planning, not after the export
        model = self._model(claim)
        if model is not None:
            model(claim.checkpoint, settings).check()

    @hookimpl(trylast=True)
    def build_model(self, claim: Claim, settings: ExportSettings) -> Any:
        native = getattr(self.manifest_of(claim.plugin), "native", None)
        if native is not None:
            return native
        model = self._model(claim)
        return model(claim.checkpoint, settings).build() if model is not None else None

    @hookimpl(trylast=True)
    def tokenizer_assets(self, claim: Claim) -> TokenizerAssets:
        ckpt = claim.checkpoint
        if ckpt.file("tokenizer.json") is None and ckpt.file("tokenizer.model") is not None:
            return TokenizerAssets(kind="sentencepiece", path=ckpt.path / "tokenizer.model")
        return TokenizerAssets(kind="hf_tokenizer_json", path=ckpt.path / "tokenizer.json")

    @hookimpl(trylast=True)
    def sampler_defaults(self, claim: Claim) -> SamplerDefaults:
        manifest = self.manifest_of(claim.plugin)
        fallback = getattr(manifest, "sampler", None) or FALLBACK_SAMPLER
        return hf.generation_sampler(claim.checkpoint, fallback)
