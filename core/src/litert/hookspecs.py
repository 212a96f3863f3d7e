"""The plugin contract: six hooks a family plugin implements.

Flow: every plugin is asked `resolve_checkpoint`; exactly one may claim. The other
five hooks are then asked of the claiming plugin only, so "first answer wins" across
families never decides anything. Hook arguments may grow in later API versions only in
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
PLUGIN_API_VERSION = 1
"""Bumped when the hook contract changes incompatibly."""
SUPPORTED_API_VERSIONS = frozenset({1})
"""Plugin API versions this core loads."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

CONVERSION_HOOKS = (
    "resolve_checkpoint",
    "build_model",
    "export_config",
    "tokenizer_assets",
    "prompt_format",
    "sampler_defaults",
)


@hookspec
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    """Claim a checkpoint this plugin converts, or return None.

    Called on every installed plugin. Must be cheap: read `checkpoint.config` (the parsed
    config.json), import no torch. The core errors out when no plugin or more than one
    plugin claims, naming the distributions and the `--family` option.

    :param checkpoint: the local checkpoint directory with its parsed config.json.
    :return: a Claim naming the family, or None when the checkpoint is not this
        plugin's.
    """


@hookspec(firstresult=True)
def export_config(claim: Claim) -> ExportSettings | None:
    """The family's default export settings.

    The core applies the user's command-line overrides (`--quantize`,
    `--prefill-lengths`, `--kv-cache-max-len`) on top and validates the result.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: ExportSettings.
    """


@hookspec(firstresult=True)
def build_model(claim: Claim, settings: ExportSettings) -> Any:
    """Build the litert-torch generative model, weights loaded, in eval mode.

    This is where torch and litert_torch are imported. The core exports the module's
    prefill and decode signatures with `settings` and quantizes it.

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :param settings: the final export settings (family defaults plus user overrides).
    :return: a `torch.nn.Module` built from litert-torch's generative layers, with a
        `config` attribute holding its `ModelConfig`.
    """


@hookspec(firstresult=True)
def tokenizer_assets(claim: Claim) -> TokenizerAssets | None:
    """The tokenizer file the bundle carries.

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

    :param claim: this plugin's claim from `resolve_checkpoint`.
    :return: SamplerDefaults, typically from the checkpoint's generation_config.json
        and otherwise the family's recommended values.
    """
