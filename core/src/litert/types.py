"""Dataclasses that flow between the core and family plugins.

Hooks return these rather than dicts so that fields can be added later without
breaking plugins: a new field always comes with a default.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

# Every recipe litert-torch's generative API offers, in the order the CLI lists them.
QUANTIZATION_RECIPES: tuple[str, ...] = (
    "none",
    "dynamic_int8",
    "weight_only_int8",
    "fp16",
    "dynamic_int4_block32",
    "dynamic_int4_block128",
    "dynamic_int4_mlp",
    "dynamic_int4_int8_head",
)
"""litert's own mixed recipes (litert.recipes): `dynamic_int4_int8_head`, the recommended int4
— every weight int4 in blocks of 32 but the LM head's, int8 per channel (and the embedding's
with it when they are one weight): Qwen2.5-Coder-1.5B keeps 95 % top-1 at 0.62× the int8
bundle; `dynamic_int4_mlp`, int4 blocks for the MLP only, int8 elsewhere (docs/verify.md
measures both on real models). Weight-only int4 in blocks is not offered: the pinned
ai-edge-quantizer has no such rule for fully connected layers; Hadamard-rotated int4 was
measured and lost to blocks of 32 (docs/verify.md)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A local Hugging Face checkpoint directory, with its config.json already parsed.

    Plugins only ever see local checkpoints: the core has downloaded or located the
    files before any hook is called.
    """

    path: Path
    """The checkpoint directory."""
    config: Mapping[str, Any]
    """The parsed config.json."""
    source: str = ""
    """What the user typed (a path or a Hub id); used for names and messages."""
    revision: str | None = None
    """For a Hub source, the commit sha that was downloaded."""
    allow_pickle: bool = False
    """The user allowed pickle weights (*.bin), loaded with torch.load(weights_only=True)."""

    @property
    def architectures(self) -> tuple[str, ...]:
        """The `architectures` list of config.json, e.g. ("Qwen3ForCausalLM",)."""
        archs = self.config.get("architectures") or ()
        return tuple(str(a) for a in archs)

    @property
    def model_type(self) -> str | None:
        """The `model_type` of config.json, e.g. "qwen3"."""
        value = self.config.get("model_type")
        return str(value) if value is not None else None

    def file(self, name: str) -> Path | None:
        """The path of a file in the checkpoint, or None when it is absent."""
        path = self.path / name
        return path if path.is_file() else None

    def read_json(self, name: str) -> dict[str, Any] | None:
        """A JSON file of the checkpoint (generation_config.json, ...), or None if absent.

        Raises LitertError when the file exists but is not valid JSON.
        """
        path = self.file(name)
        if path is None:
            return None
        from litert.errors import LitertError

        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LitertError(f"{path} is not valid JSON: {exc}", "re-download or repair the checkpoint") from exc
        if not isinstance(value, dict):
            raise LitertError(f"{path} does not hold a JSON object", "re-download or repair the checkpoint")
        return value


@dataclasses.dataclass(frozen=True)
class Claim:
    """A plugin's statement that it converts a checkpoint.

    Returned by `resolve_checkpoint`; the core passes it back to every other hook of
    the same plugin, so a plugin may stash what it parsed in `details`.
    """

    family: str
    """The family name, e.g. "qwen3"; shown to users and stored in the bundle."""
    checkpoint: Checkpoint
    """The checkpoint being claimed."""
    architecture: str = ""
    """The architecture that matched, e.g. "Qwen3ForCausalLM"."""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Anything the plugin wants to carry from the claim to its other hooks."""
    priority: int = 0
    """When several plugins claim one checkpoint, the highest priority wins (a tie is an
    error asking for --family). A plugin for a whole architecture claims with a negative
    priority (litert-llama: -10), so a plugin for one family built on it wins by default."""
    plugin: str = ""
    """The entry-point name of the plugin that claimed; set by the core after claiming."""


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """How the model is exported. Defaults are the settings that matched Google's
    published Qwen3-0.6B bundle in answer quality and size."""

    prefill_lengths: tuple[int, ...] = (8, 64, 128, 256, 512, 1024)
    """One prefill signature is exported per length; the runtime picks the smallest that fits."""
    kv_cache_max_len: int = 1280
    """KV cache size: the whole context (prompt and answer) the bundle can hold."""
    quantize: str = "dynamic_int8"
    """One of QUANTIZATION_RECIPES."""
    mask_as_input: bool = True
    """Pass the attention mask as an input (what the LiteRT-LM runtime expects)."""
    transpose_kv_cache: bool = True
    """Use the transposed KV-cache layout (faster on CPU with the LiteRT-LM runtime)."""

    def validate(self) -> None:
        """Raise LitertError when the settings cannot be exported."""
        from litert.errors import LitertError

        if self.quantize not in QUANTIZATION_RECIPES:
            raise LitertError(
                f"unknown quantization recipe {self.quantize!r}",
                f"use one of: {', '.join(QUANTIZATION_RECIPES)}",
            )
        if not self.prefill_lengths:
            raise LitertError("no prefill lengths given", "pass e.g. --prefill-lengths 8,64,128")
        if any(n <= 0 for n in self.prefill_lengths):
            raise LitertError("prefill lengths must be positive", "pass e.g. --prefill-lengths 8,64,128")
        if self.kv_cache_max_len <= 0:
            raise LitertError("the KV cache length must be positive", "pass e.g. --kv-cache-max-len 1280")
        too_long = [n for n in self.prefill_lengths if n >= self.kv_cache_max_len]
        if too_long:
            raise LitertError(
                f"prefill length {max(too_long)} does not fit a KV cache of {self.kv_cache_max_len}",
                "make every prefill length smaller than --kv-cache-max-len",
            )


@dataclasses.dataclass(frozen=True)
class TokenizerAssets:
    """The tokenizer file the bundle carries."""

    kind: Literal["hf_tokenizer_json", "sentencepiece"]
    """"hf_tokenizer_json" for a Hugging Face tokenizer.json, "sentencepiece" for tokenizer.model."""
    path: Path
    """The file itself, inside the checkpoint directory."""


@dataclasses.dataclass(frozen=True)
class PromptFormat:
    """How a conversation is turned into tokens and when generation stops."""

    user_prefix: str
    """Written before each user turn, e.g. "<|im_start|>user\\n"."""
    user_suffix: str
    """Written after each user turn, e.g. "<|im_end|>\\n"."""
    model_prefix: str
    """Written before each model turn; the generation prompt, e.g. "<|im_start|>assistant\\n"."""
    model_suffix: str
    """Written after each model turn, e.g. "<|im_end|>\\n"."""
    stop_tokens: tuple[str, ...]
    """Token strings that end generation; each must be a single token of the tokenizer."""
    system_prefix: str = ""
    """Written before a system message (empty when the family has no system turn)."""
    system_suffix: str = ""
    """Written after a system message."""
    start_token: str | None = None
    """The BOS token written at the start of the context, only when the model expects one."""
    chat_template: str | None = None
    """The model's own Jinja chat template (as in tokenizer_config.json). The core adapts it
    to the LiteRT-LM runtime's renderer before storing it."""
    runtime_model_type: str = "generic"
    """The LiteRT-LM model type: "generic", "qwen3", "qwen2p5", "gemma3", "gemma3n", "gemma4" or "lfm2"."""
    reasoning_tags: tuple[str, str] | None = None
    """Tags around the model's reasoning, e.g. ("<think>", "</think>"); `litert run` hides
    an empty reasoning block."""


@dataclasses.dataclass(frozen=True)
class SamplerDefaults:
    """Sampling parameters stored in the bundle; `litert run` options override them."""

    temperature: float
    top_p: float
    top_k: int
    max_tokens: int | None = None
    """Default cap on answer tokens; None means until a stop token or a full context."""

    def validate(self) -> None:
        """Raise LitertError on values the runtime cannot use."""
        import math

        from litert.errors import LitertError

        for field, value in (("temperature", self.temperature), ("top_p", self.top_p)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise LitertError(f"{field} must be a finite number, got {value!r}", "pass e.g. --temperature 0.6")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int):
            raise LitertError(f"top_k must be an integer, got {self.top_k!r}", "pass e.g. --top-k 20")
        if self.temperature < 0:
            raise LitertError(f"temperature must be >= 0, got {self.temperature}", "pass e.g. --temperature 0.6")
        if not 0 < self.top_p <= 1:
            raise LitertError(f"top_p must be in (0, 1], got {self.top_p}", "pass e.g. --top-p 0.95")
        if self.top_k < 1:
            raise LitertError(f"top_k must be >= 1, got {self.top_k}", "pass e.g. --top-k 20")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise LitertError(f"max tokens must be >= 1, got {self.max_tokens}", "pass e.g. --max-tokens 256")


NATIVE_RECIPES: dict[str, str] = {
    "none": "none",
    "dynamic_int8": "dynamic_wi8_afp32",
    "weight_only_int8": "weight_only_wi8_afp32",
    "dynamic_int4_block32": "dynamic_wi4b32_afp32",
}
"""litert's recipe names → ai-edge-quantizer's, for transformers-native exports (the
exporter has no fp16 and no 128-block int4 recipe)."""


@dataclasses.dataclass(frozen=True)
class NativeExport:
    """Build with litert-torch's transformers-native exporter instead of a classic model.

    For families the classic generative layers cannot express (Gemma 4's per-layer
    embeddings and shared KV, LFM2's short convolutions, Qwen3.5's linear attention): the
    exporter traces
    transformers' own modules, patched by litert-torch for export. Return one from
    `build_model`, or name one in the manifest (`PluginManifest(native=...)`); the core
    runs the exporter with the recipe and lengths always explicit, applies the shims the
    pinned litert-torch/transformers pair needs, and writes, verifies and stores the
    bundle as it does any other. Example::

        LITERT_PLUGIN = PluginManifest(families=("lfm2",), architectures=("Lfm2ForCausalLM",),
                                       api_version=2, native=NativeExport())

    The LiteRT-LM model type comes from `prompt_format` (`PromptFormat.runtime_model_type`)
    as for every family.
    """

    externalize_embedder: bool = False
    """Export the token embedder (and Gemma 4's per-layer embedder) as models of their own
    beside prefill/decode; Gemma 4 with per-layer embeddings needs it."""
    moe_implementation: str | None = None
    """The experts implementation traced ("eager" for Gemma 4's text models, whose
    default the exporter refuses)."""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Any other keyword of `litert_torch.generative.export_hf.export`, passed as is."""
    bytes_per_parameter: float = 12.5
    """What the exporter holds per parameter while it traces and lowers (4 GB more for the
    libraries): the pre-flight memory estimate's. 12.5 for Gemma 4 and LFM2 (measured, as
    export_hf's own); more where the graph is larger than the model (Qwen3.5's linear
    attention as plain operations: 19)."""


@dataclasses.dataclass(frozen=True)
class PluginManifest:
    """What a plugin module declares about itself as `LITERT_PLUGIN = PluginManifest(...)`.

    Read without calling any hook, so `litert plugins list` can describe a plugin cheaply.
    """

    families: tuple[str, ...]
    """The families the plugin converts, e.g. ("qwen3",)."""
    architectures: tuple[str, ...] = ()
    """The config.json architectures it claims, e.g. ("Qwen3ForCausalLM",)."""
    api_version: int = 1
    """The plugin API version the plugin was written against (litert.PLUGIN_API_VERSION)."""
    priority: int = 0
    """The priority of the default claim (see `Claim.priority`); a plugin for a whole
    architecture that others specialise uses a negative one."""
    sampler: SamplerDefaults | None = None
    """The family's recommended sampling, used when generation_config.json does not set it."""
    model: str | None = None
    """"module:Class" of the family's `litert.classic.ClassicDecoder` subclass, e.g.
    "litert_qwen2.model:Qwen2": the default `build_model` builds it and the default
    `check_settings` runs its `check()`. Imported only when needed."""
    native: NativeExport | None = None
    """Build every checkpoint of the family with the transformers-native exporter (see
    `NativeExport`); the default `build_model` returns it."""
    tiny_checkpoint: Path | None = None
    """A tiny checkpoint directory shipped with the plugin; `litert demo` converts and runs it."""
    demo_prompt: str = "What is the capital of France?"
    """The prompt `litert demo` sends to the tiny model."""
