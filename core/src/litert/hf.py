"""Helpers for family plugins: reading what a Hugging Face checkpoint says about itself.

Import-light (JSON only) so plugins can use them in `resolve_checkpoint` and friends.
Both config.json vintages are read: files saved by transformers 4.x carry `rope_theta`
and `torch_dtype` at the top level, files saved by transformers 5 carry
`rope_parameters` and `dtype`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from litert.errors import LitertError
from litert.types import Checkpoint, SamplerDefaults

__all__ = [
    "DecoderConfig",
    "added_tokens",
    "chat_template",
    "decoder_config",
    "eos_token_ids",
    "generation_sampler",
    "require",
    "rope_parameters",
    "rope_theta",
    "rope_type",
    "special_tokens",
    "start_token",
    "stop_tokens",
    "text_config",
    "token_strings",
    "tokenizer_config",
    "weight_names",
]


def require(config: Any, key: str, checkpoint: Checkpoint) -> Any:
    """A config.json value the model cannot be built without."""
    if key not in config or config[key] is None:
        raise LitertError(
            f"config.json of {checkpoint.source or checkpoint.path} has no {key!r}",
            "the checkpoint is incomplete or not the architecture it names; re-download it",
        )
    return config[key]


def rope_theta(config: Any, layer_type: str | None = None, default: float | None = None) -> float | None:
    """The RoPE base, from `rope_theta` (old configs) or `rope_parameters` (new configs).

    `layer_type` selects a per-layer-type entry ("full_attention", "sliding_attention")
    when `rope_parameters` is keyed by layer type, as Gemma3's is.
    """
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        if layer_type is not None and isinstance(params.get(layer_type), dict):
            params = params[layer_type]
        if "rope_theta" in params:
            return float(params["rope_theta"])
    if layer_type == "sliding_attention" and config.get("rope_local_base_freq") is not None:
        return float(config["rope_local_base_freq"])
    if config.get("rope_theta") is not None:
        return float(config["rope_theta"])
    return default


def rope_type(config: Any, layer_type: str | None = None) -> str:
    """The RoPE scaling type ("default" when none), from either config vintage."""
    return str(rope_parameters(config, layer_type)["rope_type"])


def rope_parameters(config: Any, layer_type: str | None = None) -> dict[str, Any]:
    """Every RoPE parameter of one layer type, in transformers 5's form, from either vintage.

    Always has `rope_type` ("default", "linear", "dynamic", "yarn", "longrope", "llama3"),
    `rope_theta` (None when the config has none: the family's default applies) and
    `partial_rotary_factor` (1.0 unless the config says otherwise); the scaling fields
    (`factor`, `original_max_position_embeddings`, `short_factor`, ...) as the config has
    them. Old configs keep them in `rope_scaling` with `type`, new ones in `rope_parameters`
    (keyed by layer type for Gemma3).

    Example: ``hf.rope_parameters({"rope_theta": 1e4, "rope_scaling": {"type": "linear",
    "factor": 8.0}})`` is ``{"rope_type": "linear", "factor": 8.0, "rope_theta": 10000.0,
    "partial_rotary_factor": 1.0}``.
    """
    params = config.get("rope_parameters")
    if isinstance(params, dict) and layer_type is not None and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    elif isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values()):
        params = next(iter(params.values()))  # per layer type, asked without one
    out: dict[str, Any] = dict(params) if isinstance(params, dict) else {}
    scaling = config.get("rope_scaling")
    local_base = layer_type == "sliding_attention" and config.get("rope_local_base_freq") is not None
    if not out and isinstance(scaling, dict) and not local_base:  # old Gemma3: local layers never scaled
        out = dict(scaling)
    out["rope_type"] = str(out.get("rope_type") or out.pop("type", None) or "default")
    out.pop("type", None)
    out["rope_theta"] = rope_theta(config, layer_type)
    partial = out.get("partial_rotary_factor", config.get("partial_rotary_factor"))
    out["partial_rotary_factor"] = float(partial) if partial is not None else 1.0
    if out["rope_type"] in ("longrope", "yarn", "llama3", "dynamic") and "original_max_position_embeddings" not in out:
        original = config.get("original_max_position_embeddings")
        if original is not None:
            out["original_max_position_embeddings"] = int(original)
    return out


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """What config.json says about a decoder-only transformer, read once, in one vintage.

    Made by `decoder_config(checkpoint)`; every size is checked to be there. Fields a
    family does not have take the value transformers assumes when the key is absent.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    tie_word_embeddings: bool
    activation: str
    attention_bias: bool
    mlp_bias: bool
    max_position_embeddings: int | None
    sliding_window: int | None
    """The window of sliding-window layers, None when no layer has one."""
    layer_types: tuple[str, ...]
    """Per layer: "full_attention" or "sliding_attention"."""
    rope: Mapping[str, Mapping[str, Any]]
    """`rope_parameters` per layer type present in `layer_types`."""
    raw: Mapping[str, Any]
    """The whole config.json, for what is particular to a family."""

    @property
    def partial_rotary_factor(self) -> float:
        return float(
            self.rope["full_attention" if "full_attention" in self.rope else next(iter(self.rope))][
                "partial_rotary_factor"
            ]
        )


def decoder_config(checkpoint: Checkpoint, *, tie_default: bool = False, windowed: bool = False) -> DecoderConfig:
    """The decoder's sizes, norms, biases, attention windows and RoPE from config.json.

    Windows, as transformers decides them: `use_sliding_window: false` means none (Qwen2,
    Qwen3); else `layer_types` when config.json has it; else, with `use_sliding_window`,
    the layers from `max_window_layers` on; else every layer when the family applies
    `sliding_window` to every layer (`windowed`: Mistral, Phi-3 — Llama ignores the key).
    `tie_default` is what an absent `tie_word_embeddings` means for the family (transformers'
    per-architecture default: True for Qwen2/Qwen3/Gemma, False for Llama/Phi-3).

    Example::

        c = hf.decoder_config(claim.checkpoint, tie_default=True)
        c.num_kv_heads, c.head_dim, c.layer_types, c.rope["full_attention"]["rope_type"]
    """
    c = checkpoint.config
    hidden = int(require(c, "hidden_size", checkpoint))
    heads = int(require(c, "num_attention_heads", checkpoint))
    layers = int(require(c, "num_hidden_layers", checkpoint))
    window = c.get("sliding_window") if c.get("use_sliding_window") is not False else None
    types = c.get("layer_types")
    if not window:
        types = ("full_attention",) * layers
    elif types is not None:
        types = tuple(str(t) for t in types)
        if len(types) != layers or any(t not in ("full_attention", "sliding_attention") for t in types):
            raise LitertError(
                f"config.json of {checkpoint.source or checkpoint.path} has layer_types that do not describe "
                f"{layers} sliding/full attention layers",
                "re-download the checkpoint",
            )
    elif c.get("use_sliding_window"):
        first = int(c.get("max_window_layers") or 0)
        types = tuple("sliding_attention" if i >= first else "full_attention" for i in range(layers))
    elif windowed:
        types = ("sliding_attention",) * layers
    else:
        types = ("full_attention",) * layers
    if "sliding_attention" not in types:
        window = None
    return DecoderConfig(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(c.get("num_key_value_heads") or heads),
        head_dim=int(c.get("head_dim") or hidden // heads),
        intermediate_size=int(require(c, "intermediate_size", checkpoint)),
        vocab_size=int(require(c, "vocab_size", checkpoint)),
        rms_norm_eps=float(c.get("rms_norm_eps") or 1e-6),
        tie_word_embeddings=bool(c.get("tie_word_embeddings", tie_default)),
        activation=str(c.get("hidden_act") or c.get("hidden_activation") or "silu"),
        attention_bias=bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        max_position_embeddings=int(c["max_position_embeddings"]) if c.get("max_position_embeddings") else None,
        sliding_window=int(window) if window else None,
        layer_types=types,
        rope={t: rope_parameters(c, t) for t in sorted(set(types))},
        raw=c,
    )


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's config: `text_config` of a multimodal config.json
    (Gemma3ForConditionalGeneration), else the config itself."""
    text = config.get("text_config")
    return text if isinstance(text, Mapping) else config


def weight_names(checkpoint: Checkpoint) -> set[str]:
    """Every tensor name of the checkpoint's safetensors files, read from their headers only.

    Example: telling a transformers-4 multimodal checkpoint (``language_model.model.layers.0...``)
    from a transformers-5 one (``model.language_model.layers.0...``).
    """
    from litert.weights import read_header, safetensors_files

    names: set[str] = set()
    for path in safetensors_files(checkpoint):
        if path.suffix == ".safetensors":
            names.update(k for k in read_header(path) if k != "__metadata__")
    return names


def tokenizer_config(checkpoint: Checkpoint) -> dict[str, Any]:
    """tokenizer_config.json as a dict (empty when the checkpoint has none)."""
    return checkpoint.read_json("tokenizer_config.json") or {}


def start_token(checkpoint: Checkpoint) -> str | None:
    """The BOS token, where the chat template or the tokenizer writes one (Llama 3, Gemma), else None.

    Example: a Llama-3 checkpoint whose template starts with ``{{ bos_token }}`` gives
    ``"<|begin_of_text|>"``; a Qwen checkpoint (no BOS) gives None.
    """
    tok = tokenizer_config(checkpoint)
    bos = tok.get("bos_token")
    if isinstance(bos, dict):
        bos = bos.get("content")
    if not isinstance(bos, str) or not bos:
        return None
    template = chat_template(checkpoint) or ""
    if "bos_token" in template or tok.get("add_bos_token") is True:
        return bos
    return None


def chat_template(checkpoint: Checkpoint) -> str | None:
    """The model's own chat template: chat_template.jinja, else tokenizer_config.json's."""
    path = checkpoint.file("chat_template.jinja")
    if path is not None:
        return path.read_text(encoding="utf-8")
    value = tokenizer_config(checkpoint).get("chat_template")
    if isinstance(value, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return value if isinstance(value, str) else None


def special_tokens(checkpoint: Checkpoint) -> dict[str, str]:
    """bos_token, eos_token, … as tokenizer_config.json names them (what chat templates are given)."""
    out: dict[str, str] = {}
    for key, value in tokenizer_config(checkpoint).items():
        if key.endswith("_token"):
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                out[key] = value
    return out


def added_tokens(checkpoint: Checkpoint) -> dict[str, int]:
    """Added (special) tokens of tokenizer.json, content -> id, without loading the tokenizer."""
    path = checkpoint.file("tokenizer.json")
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LitertError(f"{path} is not valid JSON: {exc}", "re-download the tokenizer") from exc
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if "content" in t and "id" in t}


def token_strings(checkpoint: Checkpoint) -> dict[int, str]:
    """id -> token string for tokenizer.json's added tokens and, where it has one, its vocabulary."""
    path = checkpoint.file("tokenizer.json")
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LitertError(f"{path} is not valid JSON: {exc}", "re-download the tokenizer") from exc
    vocab = (data.get("model") or {}).get("vocab")
    out: dict[int, str] = {}
    if isinstance(vocab, dict):
        out.update({int(i): t for t, i in vocab.items() if isinstance(i, int)})
    out.update({int(t["id"]): t["content"] for t in data.get("added_tokens", []) if "content" in t and "id" in t})
    return out


def stop_tokens(checkpoint: Checkpoint, candidates: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The stop-token strings of a checkpoint: `candidates` that its tokenizer has (a family's
    end-of-turn markers, in that order), then its EOS token(s) from generation_config.json,
    config.json and tokenizer_config.json, each once.

    Example: ``hf.stop_tokens(ckpt, ("<|im_end|>", "<|eot_id|>"))`` gives
    ``("<|im_end|>", "<|endoftext|>")`` for a ChatML checkpoint whose EOS is <|endoftext|>.
    """
    added = added_tokens(checkpoint)
    by_id = token_strings(checkpoint)
    stops = [t for t in candidates if t in added]
    eos = tokenizer_config(checkpoint).get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    extra = [by_id[i] for i in eos_token_ids(checkpoint) if i in by_id]
    extra += [eos] if isinstance(eos, str) else []
    for t in extra:
        if t not in stops:
            stops.append(t)
    return tuple(stops)


def eos_token_ids(checkpoint: Checkpoint) -> list[int]:
    """EOS ids from generation_config.json, else config.json."""
    for source in (checkpoint.read_json("generation_config.json") or {}, checkpoint.config):
        value = source.get("eos_token_id")
        if value is not None:
            return [int(v) for v in (value if isinstance(value, list) else [value])]
    return []


def generation_sampler(checkpoint: Checkpoint, fallback: SamplerDefaults) -> SamplerDefaults:
    """Sampler defaults from generation_config.json where it sets them, else `fallback`."""
    gen = checkpoint.read_json("generation_config.json")
    if not gen:
        return fallback
    if gen.get("do_sample") is False:
        return SamplerDefaults(temperature=0.0, top_p=1.0, top_k=1, max_tokens=fallback.max_tokens)
    try:
        return SamplerDefaults(
            temperature=float(gen.get("temperature", fallback.temperature)),
            top_p=float(gen.get("top_p", fallback.top_p)),
            top_k=int(gen.get("top_k", fallback.top_k)),
            max_tokens=fallback.max_tokens,
        )
    except (TypeError, ValueError) as exc:
        raise LitertError(
            f"generation_config.json of {checkpoint.source or checkpoint.path} has a sampling value that is not "
            f"a number: {exc}",
            "repair generation_config.json (temperature, top_p, top_k)",
        ) from exc
