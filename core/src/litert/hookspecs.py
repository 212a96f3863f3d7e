"""The plugin contract: the hooks a family plugin implements.

A plugin written against API 2 implements only `build_model` and `prompt_format`; every
other hook has a built-in default (`litert.defaults`, registered `trylast`, so a plugin's
own answer always wins): the claim comes from the manifest's architectures, the export
settings are `ExportSettings()`, the tokenizer is tokenizer.json else tokenizer.model, the
sampler comes from generation_config.json else the manifest's. `check_settings` is
optional.

Flow: every plugin is asked `resolve_checkpoint`; when several claim, the highest
priority wins (a tie asks for --family). The other hooks are then asked of the claiming
plugin (and the defaults) only, so "first answer wins" across families never decides
anything. Hook arguments may grow in later API versions only in
ways that keep older plugins working (pluggy passes an implementation just the
arguments it names).

Plugins never write files and never call each other; the core does all I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from litert.types import Checkpoint, Claim, ExportSettings, PromptFormat, SamplerDefaults, TokenizerAssets

PROJECT_NAME = "litert"
PLUGIN_API_VERSION = 2
"""The current plugin API: 2 added the built-in defaults, `check_settings` and the
manifest's `priority` and `sampler`."""
SUPPORTED_API_VERSIONS = frozenset({1, 2})
"""Plugin API versions this core loads (a v1 plugin implements every hook itself and
works unchanged)."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

CONVERSION_HOOKS = (
    "resolve_checkpoint",
    "build_model",
    "export_config",
    "check_settings",
    "tokenizer_assets",
    "prompt_format",
    "sampler_defaults",
)
REQUIRED_HOOKS = ("build_model", "prompt_format")
"""What a plugin must implement itself; the others have built-in defaults."""
OPTIONAL_ANSWER_HOOKS = ("check_settings",)
"""Hooks whose answer is None when all is well."""


@hookspec
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    """Claim a checkpoint this plugin converts, or return None.

    Called on every installed plugin. Must be cheap: read `checkpoint.config` (the parsed
    config.json), import no torch. When several plugins claim, the highest
    `Claim.priority` wins; the core errors out when no plugin claims, or when the top
    claims tie, naming the distributions and the `--family` option.

    Default (a plugin that does not implement it): claim when one of the manifest's
    `architectures` is in config.json's, with the manifest's `priority`.

    :param checkpoint: the local checkpoint directory with its parsed config.json.
    :return: a Claim naming the family, or None when the checkpoint is not this
        plugin's.
    """


@hookspec(firstresult=True)
def export_config(claim: Claim) -> ExportSettings | None:
    """The family's default export settings.

    The core applies the user's command-line overrides (`--quantize`,
    `--prefill-lengths`, `--kv-cache-max-len`) on top and validates the result.

    Default: `ExportSettings()` (the reference settings).

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: ExportSettings.
    """


@hookspec
def check_settings(claim: Claim, settings: ExportSettings) -> None:
    """Refuse final settings the family cannot export, before any heavy work (optional).

    Called at planning, after the user's overrides are applied and before torch is
    imported, so a refusal comes in seconds. Raise `LitertError` to refuse; return None.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :param settings: the final export settings (family defaults plus user overrides).
    :return: None.
    """


@hookspec(firstresult=True)
def build_model(claim: Claim, settings: ExportSettings) -> Any:
    """Build the litert-torch generative model, weights loaded, in eval mode.

    This is where torch and litert_torch are imported. The core exports the module's
    prefill and decode signatures with `settings` and quantizes it.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :param settings: the final export settings (family defaults plus user overrides).
    :return: a `torch.nn.Module` built from litert-torch's generative layers, with a
        `config` attribute holding its `ModelConfig`; or a `litert.NativeExport` (cheap, no
        torch import): the core then builds the models with litert-torch's
        transformers-native exporter. Default: the manifest's `native`, else its `model`.
    """


@hookspec(firstresult=True)
def tokenizer_assets(claim: Claim) -> TokenizerAssets | None:
    """The tokenizer file the bundle carries.

    Default: tokenizer.json when the checkpoint has one, else tokenizer.model.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: TokenizerAssets pointing at tokenizer.json or tokenizer.model; the core
        checks that the file exists and that the stop tokens are single tokens of it.
    """


@hookspec(firstresult=True)
def prompt_format(claim: Claim) -> PromptFormat | None:
    """Turn prefixes and suffixes, stop tokens, BOS and the chat template.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: PromptFormat; the core stores it in the bundle's LlmMetadata and adapts
        `chat_template` to the LiteRT-LM renderer.
    """


@hookspec(firstresult=True)
def sampler_defaults(claim: Claim) -> SamplerDefaults | None:
    """Default sampling parameters stored in the bundle.

    Default: generation_config.json where it sets them, else the manifest's `sampler`,
    else temperature 1.0, top-p 1.0, top-k 40.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: SamplerDefaults, typically from the checkpoint's generation_config.json
        and otherwise the family's recommended values.
    """
