"""litert-llama: the Llama family plugin for litert.

Import-light on purpose: torch and litert_torch are imported in model.py, which only
`build_model` loads. Everything is read from the checkpoint (config.json, its tokenizer's
special tokens, its chat template, generation_config.json) rather than assumed.
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

ARCHITECTURE = "LlamaForCausalLM"
FAMILY = "llama"
TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Llama-tiny"
PRIORITY = -10
"""A generic Llama-architecture claim: a plugin for one Llama-based family wins over it."""

LITERT_PLUGIN = PluginManifest(
    families=(FAMILY,),
    architectures=(ARCHITECTURE,),
    api_version=1,
    tiny_checkpoint=TINY_CHECKPOINT,
)

# Meta's recommended sampling for Llama 3 instruct models, when generation_config.json says nothing.
LLAMA_SAMPLER = SamplerDefaults(temperature=0.6, top_p=0.9, top_k=50)

# name: (marker that identifies it in the tokenizer, user prefix, user suffix, model prefix,
#        model suffix, system prefix, system suffix, end-of-turn stop tokens)
FORMATS = {
    "llama3": (
        "<|start_header_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n",
        "<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
        "<|start_header_id|>system<|end_header_id|>\n\n",
        "<|eot_id|>",
        ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    ),
    "chatml": (
        "<|im_start|>",
        "<|im_start|>user\n",
        "<|im_end|>\n",
        "<|im_start|>assistant\n",
        "<|im_end|>\n",
        "<|im_start|>system\n",
        "<|im_end|>\n",
        ("<|im_end|>", "<|endoftext|>"),
    ),
    "zephyr": (
        "<|user|>",
        "<|user|>\n",
        "</s>\n",
        "<|assistant|>\n",
        "</s>\n",
        "<|system|>\n",
        "</s>\n",
        ("</s>",),
    ),
}


def chat_format(checkpoint: Checkpoint) -> str | None:
    """Which turn format the checkpoint's tokenizer and template use, or None (a base model)."""
    tokens = set(hf.added_tokens(checkpoint))
    template = hf.chat_template(checkpoint) or ""
    for name, spec in FORMATS.items():
        if spec[0] in tokens or spec[0] in template:
            return name
    return None


def start_token(checkpoint: Checkpoint) -> str | None:
    """The BOS token, where the template or the tokenizer writes one (Llama 3, TinyLlama)."""
    tok = hf.tokenizer_config(checkpoint)
    bos = tok.get("bos_token")
    if isinstance(bos, dict):
        bos = bos.get("content")
    if not isinstance(bos, str) or not bos:
        return None
    template = hf.chat_template(checkpoint) or ""
    if "bos_token" in template or tok.get("add_bos_token") is True:
        return bos
    return None


@hookimpl
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    if ARCHITECTURE not in checkpoint.architectures:
        return None
    return Claim(family=FAMILY, checkpoint=checkpoint, architecture=ARCHITECTURE, priority=PRIORITY)


@hookimpl
def export_config(claim: Claim) -> ExportSettings:
    return ExportSettings()


@hookimpl
def build_model(claim: Claim, settings: ExportSettings):
    from litert_llama.model import build

    return build(claim.checkpoint, settings)


@hookimpl
def tokenizer_assets(claim: Claim) -> TokenizerAssets:
    ckpt = claim.checkpoint
    if ckpt.file("tokenizer.json") is None and ckpt.file("tokenizer.model") is not None:
        return TokenizerAssets(kind="sentencepiece", path=ckpt.path / "tokenizer.model")
    return TokenizerAssets(kind="hf_tokenizer_json", path=ckpt.path / "tokenizer.json")


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    ckpt = claim.checkpoint
    name = chat_format(ckpt)
    template = hf.chat_template(ckpt)
    if name is None:  # a base model: no turns; `litert run` sends raw text
        return PromptFormat(
            user_prefix="",
            user_suffix="",
            model_prefix="",
            model_suffix="",
            stop_tokens=hf.stop_tokens(ckpt) or ("</s>",),
            start_token=start_token(ckpt),
            chat_template=template,
        )
    _, up, us, mp, ms, sp, ss, stops = FORMATS[name]
    return PromptFormat(
        user_prefix=up,
        user_suffix=us,
        model_prefix=mp,
        model_suffix=ms,
        system_prefix=sp,
        system_suffix=ss,
        stop_tokens=hf.stop_tokens(ckpt, stops),
        start_token=start_token(ckpt),
        chat_template=template,
        runtime_model_type="generic",
    )


@hookimpl
def sampler_defaults(claim: Claim) -> SamplerDefaults:
    return hf.generation_sampler(claim.checkpoint, LLAMA_SAMPLER)
