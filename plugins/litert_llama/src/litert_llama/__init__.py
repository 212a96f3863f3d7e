"""litert-llama: the Llama family plugin for litert (plugin API 2).

Everything is read from the checkpoint: the model from config.json (litert's classic
decoder covers Llama's shape, `llama3` RoPE and the rest, see model.py), the turn format
from its tokenizer's special tokens (Llama-3 headers, ChatML or Zephyr; none for a base
model), its chat template, stop tokens and BOS. Import-light: torch only when building.
"""

from __future__ import annotations

from pathlib import Path

from litert import Claim, PluginManifest, PromptFormat, SamplerDefaults, hookimpl, prompts

__version__ = "0.1.0"

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Llama-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("llama",),
    architectures=("LlamaForCausalLM",),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    # A generic Llama-architecture claim: a plugin for one Llama-based family wins over it.
    priority=-10,
    # Meta's recommended sampling for Llama 3 instruct models, when generation_config.json says nothing.
    sampler=SamplerDefaults(temperature=0.6, top_p=0.9, top_k=50),
    model="litert_llama.model:Llama",
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    return prompts.from_checkpoint(claim.checkpoint)
