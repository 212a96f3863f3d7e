"""litert-smollm: the Smollm family plugin for litert.

Keep this module import-light: torch and litert_torch are imported in model.py, which
only `build_model` loads.
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Checkpoint,
    Claim,
    ExportSettings,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    TokenizerAssets,
    hf,
    hookimpl,
)

FAMILY = "smollm"
ARCHITECTURES = ("LlamaForCausalLM",)
TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Smollm-tiny"

LITERT_PLUGIN = PluginManifest(
    families=(FAMILY,),
    architectures=ARCHITECTURES,
    api_version=1,
    tiny_checkpoint=TINY_CHECKPOINT,
)


@hookimpl
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    # SmolLM is a Llama-architecture family with ChatML turns: claim only those, so that
    # other Llama checkpoints go to litert-llama (which claims every Llama with a lower
    # priority, so this plugin wins SmolLM checkpoints when both are installed).
    if "<|im_start|>" not in hf.added_tokens(checkpoint):
        return None
    for architecture in ARCHITECTURES:
        if architecture in checkpoint.architectures:
            return Claim(family=FAMILY, checkpoint=checkpoint, architecture=architecture)
    return None


@hookimpl
def export_config(claim: Claim) -> ExportSettings:
    return ExportSettings()


@hookimpl
def build_model(claim: Claim, settings: ExportSettings):
    from litert_smollm.model import build

    return build(claim.checkpoint, settings)


@hookimpl
def tokenizer_assets(claim: Claim) -> TokenizerAssets:
    return TokenizerAssets(kind="hf_tokenizer_json", path=claim.checkpoint.path / "tokenizer.json")


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    # ChatML. Change the markers and stop tokens to your family's.
    return PromptFormat(
        user_prefix="<|im_start|>user\n",
        user_suffix="<|im_end|>\n",
        model_prefix="<|im_start|>assistant\n",
        model_suffix="<|im_end|>\n",
        system_prefix="<|im_start|>system\n",
        system_suffix="<|im_end|>\n",
        stop_tokens=("<|im_end|>",),
        chat_template=hf.chat_template(claim.checkpoint),
    )


@hookimpl
def sampler_defaults(claim: Claim) -> SamplerDefaults:
    return hf.generation_sampler(claim.checkpoint, SamplerDefaults(temperature=0.7, top_p=0.9, top_k=40))
