"""litert-gemma3: the Gemma3 (text) family plugin for litert.

Import-light on purpose: torch is imported inside `build_model` (see model.py).
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

__version__ = "0.1.0"

ARCHITECTURE = "Gemma3ForCausalLM"
FAMILY = "gemma3"
TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Gemma3-tiny"

LITERT_PLUGIN = PluginManifest(
    families=(FAMILY,),
    architectures=(ARCHITECTURE,),
    api_version=1,
    tiny_checkpoint=TINY_CHECKPOINT,
)

# Gemma's recommended sampling.
GEMMA3_SAMPLER = SamplerDefaults(temperature=1.0, top_p=0.95, top_k=64)


@hookimpl
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    if ARCHITECTURE not in checkpoint.architectures:
        return None
    return Claim(family=FAMILY, checkpoint=checkpoint, architecture=ARCHITECTURE)


@hookimpl
def export_config(claim: Claim) -> ExportSettings:
    # The defaults are the reference settings: prefill 8..1024, KV cache 1280, dynamic_int8,
    # mask as input, transposed KV cache.
    return ExportSettings()


@hookimpl
def build_model(claim: Claim, settings: ExportSettings):
    from litert_gemma3.model import build

    return build(claim.checkpoint, settings)


@hookimpl
def tokenizer_assets(claim: Claim) -> TokenizerAssets:
    # Google's checkpoints carry SentencePiece's tokenizer.model; fine-tunes saved by
    # transformers 5 carry only tokenizer.json, which the runtime reads as well.
    ckpt = claim.checkpoint
    if ckpt.file("tokenizer.model") is None and ckpt.file("tokenizer.json") is not None:
        return TokenizerAssets(kind="hf_tokenizer_json", path=ckpt.path / "tokenizer.json")
    return TokenizerAssets(kind="sentencepiece", path=ckpt.path / "tokenizer.model")


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    return PromptFormat(
        user_prefix="<start_of_turn>user\n",
        user_suffix="<end_of_turn>\n",
        model_prefix="<start_of_turn>model\n",
        model_suffix="<end_of_turn>\n",
        stop_tokens=("<end_of_turn>", "<eos>"),
        # Gemma is trained with <bos> at the start of every sequence, and misbehaves without it.
        start_token="<bos>",
        chat_template=hf.chat_template(claim.checkpoint),
        runtime_model_type="gemma3",
    )


@hookimpl
def sampler_defaults(claim: Claim) -> SamplerDefaults:
    return hf.generation_sampler(claim.checkpoint, GEMMA3_SAMPLER)
