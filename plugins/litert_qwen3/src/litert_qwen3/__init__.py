"""litert-qwen3: the Qwen3 family plugin for litert.

Import-light on purpose: hooks that need torch import it inside (see model.py), so
`litert --help` and `litert plugins list` stay fast.
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

ARCHITECTURE = "Qwen3ForCausalLM"
FAMILY = "qwen3"
TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Qwen3-tiny"

LITERT_PLUGIN = PluginManifest(
    families=(FAMILY,),
    architectures=(ARCHITECTURE,),
    api_version=1,
    tiny_checkpoint=TINY_CHECKPOINT,
)

# Qwen3's recommended sampling for chat (temperature 1.0 makes small models loop).
QWEN3_SAMPLER = SamplerDefaults(temperature=0.6, top_p=0.95, top_k=20)
STOP_CANDIDATES = ("<|im_end|>", "<|endoftext|>")


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
    from litert_qwen3.model import build

    return build(claim.checkpoint, settings)


@hookimpl
def tokenizer_assets(claim: Claim) -> TokenizerAssets:
    return TokenizerAssets(kind="hf_tokenizer_json", path=claim.checkpoint.path / "tokenizer.json")


def stop_tokens(checkpoint: Checkpoint) -> tuple[str, ...]:
    """<|im_end|> and <|endoftext|>, plus any other EOS the checkpoint declares."""
    return hf.stop_tokens(checkpoint, STOP_CANDIDATES) or ("<|im_end|>",)


def runtime_chat_template(checkpoint: Checkpoint) -> str | None:
    """The checkpoint's own template, with history rendered as generated (see chat_template.py)."""
    from litert_qwen3.chat_template import stable_history_template

    template = hf.chat_template(checkpoint)
    return stable_history_template(template) if template else None


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    ckpt = claim.checkpoint
    added = hf.added_tokens(ckpt)
    return PromptFormat(
        user_prefix="<|im_start|>user\n",
        user_suffix="<|im_end|>\n",
        model_prefix="<|im_start|>assistant\n",
        model_suffix="<|im_end|>\n",
        system_prefix="<|im_start|>system\n",
        system_suffix="<|im_end|>\n",
        stop_tokens=stop_tokens(ckpt),
        start_token=None,
        chat_template=runtime_chat_template(ckpt),
        runtime_model_type="qwen3",
        reasoning_tags=("<think>", "</think>") if "<think>" in added else None,
    )


@hookimpl
def sampler_defaults(claim: Claim) -> SamplerDefaults:
    return hf.generation_sampler(claim.checkpoint, QWEN3_SAMPLER)
