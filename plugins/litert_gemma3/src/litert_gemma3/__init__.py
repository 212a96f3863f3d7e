"""litert-gemma3: the Gemma3 (text) family plugin for litert (plugin API 2).

What is Gemma3's own: the model (model.py), Gemma's turns with <bos> first and the
gemma3 runtime type, and the SentencePiece tokenizer.model preferred over tokenizer.json.
Import-light: torch is imported only when building.
"""

from __future__ import annotations

from pathlib import Path

from litert import Claim, PluginManifest, PromptFormat, SamplerDefaults, TokenizerAssets, hookimpl, prompts

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Gemma3-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("gemma3",),
    architectures=("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"),  # the latter converted text-only
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    sampler=SamplerDefaults(temperature=1.0, top_p=0.95, top_k=64),  # Gemma's recommended sampling
    model="litert_gemma3.model:Gemma3",
)


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
    # Gemma is trained with <bos> at the start of every sequence, and misbehaves without it.
    return prompts.gemma(claim.checkpoint, runtime_model_type="gemma3")
