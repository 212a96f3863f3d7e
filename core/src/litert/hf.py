"""Helpers for family plugins: reading what a Hugging Face checkpoint says about itself.

Import-light (JSON only) so plugins can use them in `resolve_checkpoint` and friends.
Both config.json vintages are read: files saved by transformers 4.x carry `rope_theta`
and `torch_dtype` at the top level, files saved by transformers 5 carry
`rope_parameters` and `dtype`.
"""

from __future__ import annotations

import json
from typing import Any

from litert.errors import LitertError
from litert.types import Checkpoint, SamplerDefaults


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
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        if layer_type is not None and isinstance(params.get(layer_type), dict):
            params = params[layer_type]
        return str(params.get("rope_type") or params.get("type") or "default")
    scaling = config.get("rope_scaling")
    if isinstance(scaling, dict):
        return str(scaling.get("rope_type") or scaling.get("type") or "default")
    return "default"


def tokenizer_config(checkpoint: Checkpoint) -> dict[str, Any]:
    return checkpoint.read_json("tokenizer_config.json") or {}


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
