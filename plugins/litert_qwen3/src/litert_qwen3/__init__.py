"""litert-qwen3: the Qwen3 family plugin for litert (plugin API 2).

What is Qwen3's own: the model's knobs (model.py), ChatML with Qwen3's runtime type and
reasoning tags, and the chat-template patch that keeps history stable (chat_template.py).
Everything else is litert's default. Import-light: torch is imported only when building.
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Claim,
    ExportSettings,
    LitertError,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    hf,
    hookimpl,
    prompts,
)

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Qwen3-tiny"

QWEN3_5 = ("Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForCausalLM",
           "Qwen3_5MoeForConditionalGeneration")  # fmt: skip

LITERT_PLUGIN = PluginManifest(
    families=("qwen3",),
    # Qwen3.5 is claimed only to be refused with its reason (check_settings).
    architectures=("Qwen3ForCausalLM", *QWEN3_5),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    # Qwen3's recommended sampling for chat (temperature 1.0 makes small models loop).
    sampler=SamplerDefaults(temperature=0.6, top_p=0.95, top_k=20),
    model="litert_qwen3.model:Qwen3",
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    from litert_qwen3.chat_template import stable_history_template

    ckpt = claim.checkpoint
    template = hf.chat_template(ckpt)
    return prompts.chatml(
        ckpt,
        chat_template=stable_history_template(template) if template else None,
        runtime_model_type="qwen3",
        reasoning_tags=("<think>", "</think>") if "<think>" in hf.added_tokens(ckpt) else None,
    )


@hookimpl
def check_settings(claim: Claim, settings: ExportSettings) -> None:
    if set(QWEN3_5) & set(claim.checkpoint.architectures):
        raise LitertError(
            "Qwen3.5 is not converted: its linear-attention layers run only in LiteRT-LM's own "
            "gated_delta_update kernel, whose answers part from transformers' from the first token on the "
            "pinned toolchain (litert-torch 0.10.0, LiteRT-LM 0.18.1), and litert does not make a bundle "
            "it cannot verify",
            "convert a Qwen3 checkpoint (Qwen3ForCausalLM), or follow the Qwen3.5 note in docs/verify.md",
        )
