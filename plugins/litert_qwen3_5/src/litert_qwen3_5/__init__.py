"""litert-qwen3_5: the Qwen3.5 family plugin for litert (plugin API 2).

Qwen3.5 interleaves gated delta-net linear attention (a short convolution and a recurrent
state per layer) with full attention, which litert's classic layers cannot express: the
family is built by litert-torch's transformers-native exporter (`NativeExport`), its
linear attention as plain operations (litert.native says why), the states carried beside
the KV cache. ChatML with Qwen's `<think>` reasoning, as Qwen3.
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

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Qwen3_5-tiny"

NOT_YET = ("Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration")
"""Claimed only to be refused with the reason (check_settings): not proven here yet."""

LITERT_PLUGIN = PluginManifest(
    families=("qwen3_5",),
    architectures=("Qwen3_5ForCausalLM", *NOT_YET),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    # Qwen's recommended sampling for chat (as Qwen3's).
    sampler=SamplerDefaults(temperature=0.6, top_p=0.95, top_k=20),
    # The linear attention as plain operations (litert.native says why); a prefill of 64
    # tokens or more computed in chunks of 64, as transformers does, not unrolled token by
    # token (a 475M model's export at prefill 128 ran 13 minutes and 13.7 GB unrolled).
    # 13.5 GB measured for 0.50 B parameters: more than the default 12.5 bytes a parameter.
    native=NativeExport(options={"extra_kwargs": {"use_fused_gdn": False, "gdn_mode": 1}}, bytes_per_parameter=19.0),
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    ckpt = claim.checkpoint
    # LiteRT-LM 0.18.1 has no Qwen3.5 model type; litert-torch's own bundles use Qwen3's.
    return prompts.chatml(
        ckpt,
        chat_template=hf.chat_template(ckpt),
        runtime_model_type="qwen3",
        reasoning_tags=("<think>", "</think>") if "<think>" in hf.added_tokens(ckpt) else None,
    )


REFUSED_ROPE = ("linear", "llama3", "yarn", "longrope", "dynamic")
"""RoPE scalings litert-torch's Qwen3.5 graph leaves out (the kit's stress variants, `nox -s
stress`: logits off by 6-11 where transformers scales); Qwen3.5's own RoPE is plain."""


@hookimpl
def check_settings(claim: Claim, settings: ExportSettings) -> None:
    rope = hf.rope_type(hf.text_config(claim.checkpoint.config))  # either config vintage
    if rope in REFUSED_ROPE:
        raise LitertError(
            f"Qwen3.5 with {rope} RoPE scaling cannot be exported exactly: litert-torch's Qwen3.5 graph applies "
            "plain RoPE",
            "convert the checkpoint without the RoPE scaling, or report it to litert-torch",
        )
    claimed = set(NOT_YET) & set(claim.checkpoint.architectures)
    if claimed:
        raise LitertError(
            f"{sorted(claimed)[0]} is not converted yet: litert converts Qwen3.5's text model "
            "(Qwen3_5ForCausalLM); its multimodal and mixture-of-experts models are not proven on the pinned "
            "toolchain",
            "convert a Qwen3_5ForCausalLM checkpoint",
        )
