"""litert-qwen2: the Qwen2 family plugin for litert (plugin API 2).

Qwen2.5 (Instruct, Coder, Math) and DeepSeek-R1-Distill-Qwen share `Qwen2ForCausalLM`;
what differs is the chat format, read from the checkpoint: ChatML, or DeepSeek-R1's
turns with its reasoning tags. The model is litert's classic decoder (model.py).
"""

from __future__ import annotations

from pathlib import Path

from litert import Claim, PluginManifest, PromptFormat, SamplerDefaults, hookimpl, prompts

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Qwen2-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("qwen2",),
    architectures=("Qwen2ForCausalLM",),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    sampler=SamplerDefaults(temperature=0.7, top_p=0.8, top_k=20),  # Qwen2.5-Instruct's generation_config
    model="litert_qwen2.model:Qwen2",
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    if prompts.detect(claim.checkpoint) == "deepseek_r1":
        return prompts.deepseek_r1(claim.checkpoint, runtime_model_type="qwen2p5")
    return prompts.chatml(claim.checkpoint, runtime_model_type="qwen2p5")
