"""litert-qwen3: the Qwen3 family plugin for litert (plugin API 2).

What is Qwen3's own: the model's knobs (model.py), ChatML with Qwen3's runtime type and
reasoning tags, and the chat-template patch that keeps history stable (chat_template.py).
Everything else is litert's default. Import-light: torch is imported only when building.
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Claim,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    hf,
    hookimpl,
    prompts,
)

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Qwen3-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("qwen3",),
    architectures=("Qwen3ForCausalLM",),  # Qwen3.5 is litert-qwen3_5's
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
