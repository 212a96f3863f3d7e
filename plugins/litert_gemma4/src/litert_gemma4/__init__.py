"""litert-gemma4: the Gemma 4 family plugin for litert (plugin API 2).

Gemma 4's per-layer embeddings, KV shared across layers and per-layer-type head sizes are
beyond litert's classic layers: the family is built by litert-torch's transformers-native
exporter (`NativeExport`). Gemma4ForConditionalGeneration (E2B, E4B) is converted
text-only: its vision and audio towers stay behind, and its token and per-layer embedders
become models of their own in the bundle, as LiteRT-LM runs them. Gemma4ForCausalLM (the
dense text models) is traced with the eager experts implementation the exporter needs.
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Checkpoint,
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

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "Gemma4-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("gemma4",),
    architectures=("Gemma4ForConditionalGeneration", "Gemma4ForCausalLM"),
    api_version=2,
    tiny_checkpoint=TINY_CHECKPOINT,
    sampler=SamplerDefaults(temperature=1.0, top_p=0.95, top_k=64),  # Gemma's recommended sampling
    native=NativeExport(moe_implementation="eager"),  # build_model below tailors it per checkpoint
)


def _per_layer_embeddings(claim: Claim) -> bool:
    return bool(hf.text_config(claim.checkpoint.config).get("hidden_size_per_layer_input"))


EXPORTED_ROPE = ("default", "proportional", "longrope")
"""The RoPE types the exporter computes as transformers does on Gemma 4 (the kit's stress
variants, `nox -s stress`): linear, llama3 and YaRN scaling make its partial-rotary layers
fail to trace, so they are refused at planning."""


def _rope_types(config: dict) -> set[str]:
    params = hf.text_config(config).get("rope_parameters") or {}
    dicts = [d for d in params.values() if isinstance(d, dict)] or [params]
    return {str(d.get("rope_type") or d.get("type") or "default") for d in dicts}


@hookimpl
def check_settings(claim: Claim, settings: ExportSettings) -> None:
    other = sorted(_rope_types(claim.checkpoint.config) - set(EXPORTED_ROPE))
    if other:
        raise LitertError(
            f"Gemma 4 with {', '.join(other)} RoPE scaling cannot be exported: litert-torch's exporter "
            f"computes Gemma 4's RoPE only as {', '.join(EXPORTED_ROPE)}",
            "convert the checkpoint without the RoPE scaling, or report it to litert-torch",
        )
    if "Gemma4ForCausalLM" in claim.checkpoint.architectures and _per_layer_embeddings(claim):
        raise LitertError(
            "a Gemma4ForCausalLM with per-layer embeddings cannot be exported: litert-torch exports "
            "the per-layer embedder only from Gemma4ForConditionalGeneration",
            "convert the Gemma4ForConditionalGeneration checkpoint it was taken from (E2B, E4B)",
        )


@hookimpl
def build_model(claim: Claim, settings: ExportSettings) -> NativeExport:
    # With per-layer embeddings, the token and per-layer embedders are models of their own
    # (as the runtime runs E2B/E4B); the exporter traces Gemma 4's experts only eagerly.
    return NativeExport(externalize_embedder=_per_layer_embeddings(claim), moe_implementation="eager")


THOUGHT_CHANNEL = ("<|channel>", "<channel|>")
"""Gemma 4 reasons in a channel, `<|channel>thought\n…<channel|>`, when its chat template is
asked to (`enable_thinking`: `litert run --think`, `chat_template_kwargs` in serve). The
markers are the tokenizer's `soc_token` / `eoc_token`, as litert-torch's Gemma 4 metadata
and transformers' response parser name them; these are their defaults."""


def reasoning_tags(checkpoint: Checkpoint) -> tuple[str, str] | None:
    """The thought channel's opening and closing text, when the tokenizer has its markers."""
    config = checkpoint.read_json("tokenizer_config.json") or {}
    named = config.get("extra_special_tokens")
    named = named if isinstance(named, dict) else {}  # transformers 5 names Gemma 4's markers here

    def marker(key: str, default: str) -> str:
        value = config.get(key) or named.get(key) or default
        return str(value.get("content", default)) if isinstance(value, dict) else str(value)

    start, end = marker("soc_token", THOUGHT_CHANNEL[0]), marker("eoc_token", THOUGHT_CHANNEL[1])
    added = hf.added_tokens(checkpoint)
    return (f"{start}thought\n", end) if start in added and end in added else None


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    ckpt = claim.checkpoint
    return prompts.from_checkpoint(ckpt, runtime_model_type="gemma4", reasoning_tags=reasoning_tags(ckpt))
