"""litert-phi3: the Phi-3 family plugin for litert (plugin API 2).

Phi-3-mini, Phi-3.5-mini and Phi-4-mini (`Phi3ForCausalLM`): fused projections, partial
rotary, LongRoPE and a window on every layer, all in model.py; Phi's turns with `<|end|>`.
"""

from __future__ import annotations

from pathlib import Path

from litert import Claim, PluginManifest, PromptFormat, SamplerDefaults, hookimpl, prompts

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Phi3-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("phi3",),
    architectures=("Phi3ForCausalLM",),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    sampler=SamplerDefaults(temperature=0.7, top_p=0.95, top_k=40),
    model="litert_phi3.model:Phi3",
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    return prompts.phi(claim.checkpoint)
