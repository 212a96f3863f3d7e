"""litert-lfm2: the LFM2 family plugin for litert (plugin API 2).

LFM2 interleaves gated short convolutions with grouped-query attention, which litert's
classic layers cannot express: the family is built by litert-torch's transformers-native
exporter (`NativeExport`), the convolution states carried beside the KV cache. The chat
format is read from the checkpoint (ChatML, `<|startoftext|>` first in the real models).
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Claim,
    ExportSettings,
    LitertError,
    NativeExport,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    hf,
    hookimpl,
    prompts,
)

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Lfm2-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("lfm2",),
    architectures=("Lfm2ForCausalLM",),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    sampler=SamplerDefaults(temperature=0.3, top_p=1.0, top_k=50),  # Liquid AI's recommended sampling
    native=NativeExport(),
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    return prompts.from_checkpoint(claim.checkpoint, runtime_model_type="lfm2")


REFUSED_ROPE = ("longrope",)
"""RoPE types litert-torch's exporter fails to trace on LFM2 (the kit's stress variants,
`nox -s stress`; default, linear, llama3 and YaRN convert exactly)."""


@hookimpl
def check_settings(claim: Claim, settings: ExportSettings) -> None:
    rope = hf.rope_type(hf.text_config(claim.checkpoint.config))  # either config vintage
    if rope in REFUSED_ROPE:
        raise LitertError(
            f"LFM2 with {rope} RoPE scaling cannot be exported: litert-torch's exporter fails to trace it",
            "convert the checkpoint without the RoPE scaling, or report it to litert-torch",
        )
