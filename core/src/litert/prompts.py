"""Prompt-format presets: the turn markers of the common chat formats, completed from the
checkpoint's own tokenizer (stop tokens, BOS) and chat template.

Import-light (JSON only), for a plugin's `prompt_format` hook::

    from litert import prompts

    @hookimpl
    def prompt_format(claim):
        return prompts.chatml(claim.checkpoint, runtime_model_type="qwen2p5")

`prompts.detect(checkpoint)` names the preset whose markers the checkpoint's tokenizer or
template carries, and `prompts.from_checkpoint(checkpoint)` gives that preset's format, or
a base-model format (no turns, raw text) when there is none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litert import hf
from litert.types import Checkpoint, PromptFormat

__all__ = [
    "PRESETS",
    "Preset",
    "chatml",
    "deepseek_r1",
    "detect",
    "from_checkpoint",
    "gemma",
    "llama3",
    "phi",
    "preset",
    "zephyr",
]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One chat format: how its turns are written and which tokens end a turn."""

    name: str
    marker: str
    """The token that identifies the format in a tokenizer or template."""
    user: tuple[str, str]
    model: tuple[str, str]
    system: tuple[str, str]
    stops: tuple[str, ...]
    """End-of-turn tokens, in order of preference; those the tokenizer has are kept."""
    start_token: str | None = None
    """A BOS the format always writes, whatever the tokenizer config says (Gemma's <bos>)."""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "llama3",
            "<|start_header_id|>",
            ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
            ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
            ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
            ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
        ),
        Preset(
            "deepseek_r1",
            "<｜Assistant｜>",
            ("<｜User｜>", ""),
            ("<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
            ("", ""),  # the R1 template writes system text at the very start, without markers
            ("<｜end▁of▁sentence｜>",),
        ),
        Preset(
            "chatml",
            "<|im_start|>",
            ("<|im_start|>user\n", "<|im_end|>\n"),
            ("<|im_start|>assistant\n", "<|im_end|>\n"),
            ("<|im_start|>system\n", "<|im_end|>\n"),
            ("<|im_end|>", "<|endoftext|>"),
        ),
        Preset(
            "gemma",
            "<start_of_turn>",
            ("<start_of_turn>user\n", "<end_of_turn>\n"),
            ("<start_of_turn>model\n", "<end_of_turn>\n"),
            ("", ""),  # Gemma folds a system message into the first user turn (its template does)
            ("<end_of_turn>", "<eos>"),
            start_token="<bos>",
        ),
        Preset(
            "phi",
            "<|end|>",
            ("<|user|>\n", "<|end|>\n"),
            ("<|assistant|>\n", "<|end|>\n"),
            ("<|system|>\n", "<|end|>\n"),
            ("<|end|>", "<|endoftext|>"),
        ),
        Preset(
            "zephyr",
            "<|user|>",
            ("<|user|>\n", "</s>\n"),
            ("<|assistant|>\n", "</s>\n"),
            ("<|system|>\n", "</s>\n"),
            ("</s>",),
        ),
    )
}
"""Checked in this order by `detect` (Phi-3's <|end|> before Zephyr's <|user|>, which both carry)."""


def detect(checkpoint: Checkpoint) -> str | None:
    """The name of the preset whose marker the tokenizer's added tokens or the chat template
    carries, or None (a base model, or a format litert has no preset for)."""
    tokens = set(hf.added_tokens(checkpoint))
    template = hf.chat_template(checkpoint) or ""
    for p in PRESETS.values():
        if p.marker in tokens or p.marker in template:
            return p.name
    return None


def preset(name: str, checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """The PromptFormat of preset `name` for `checkpoint`: the preset's turns, the stop tokens
    its tokenizer has (then its EOS tokens), its BOS where it writes one, its own chat
    template; `overrides` replace any PromptFormat field (e.g. runtime_model_type="qwen3")."""
    p = PRESETS[name]
    if checkpoint.file("tokenizer.json") is None:  # SentencePiece only: the preset's stops, checked at planning
        stops = tuple(dict.fromkeys(p.stops + hf.stop_tokens(checkpoint)))
    else:
        stops = hf.stop_tokens(checkpoint, p.stops) or p.stops[:1]
    fields: dict[str, Any] = {
        "user_prefix": p.user[0],
        "user_suffix": p.user[1],
        "model_prefix": p.model[0],
        "model_suffix": p.model[1],
        "system_prefix": p.system[0],
        "system_suffix": p.system[1],
        "stop_tokens": stops,
        "start_token": p.start_token or hf.start_token(checkpoint),
        "chat_template": hf.chat_template(checkpoint),
    }
    return PromptFormat(**{**fields, **overrides})


def chatml(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """ChatML (`<|im_start|>role ... <|im_end|>`): Qwen, SmolLM, many fine-tunes."""
    return preset("chatml", checkpoint, **overrides)


def deepseek_r1(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """DeepSeek-R1 distills (`<｜User｜>`, `<｜Assistant｜>`, `<｜end▁of▁sentence｜>`), reasoning in <think>."""
    return preset("deepseek_r1", checkpoint, **{"reasoning_tags": ("<think>", "</think>"), **overrides})


def llama3(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """Llama 3 headers (`<|start_header_id|>role<|end_header_id|>`, `<|eot_id|>`)."""
    return preset("llama3", checkpoint, **overrides)


def gemma(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """Gemma turns (`<start_of_turn>user`, `<end_of_turn>`), `<bos>` first."""
    return preset("gemma", checkpoint, **overrides)


def phi(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """Phi-3/Phi-4 (`<|user|>`, `<|assistant|>`, `<|end|>`)."""
    return preset("phi", checkpoint, **overrides)


def zephyr(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """Zephyr / TinyLlama-chat (`<|user|>`, `</s>`)."""
    return preset("zephyr", checkpoint, **overrides)


def from_checkpoint(checkpoint: Checkpoint, **overrides: Any) -> PromptFormat:
    """The detected preset's format; for a checkpoint with none, a base-model format (no
    turn markers: `litert run` sends raw text; stop at the EOS tokens)."""
    name = detect(checkpoint)
    if name is not None:
        return preset(name, checkpoint, **overrides)
    fields: dict[str, Any] = {
        "user_prefix": "",
        "user_suffix": "",
        "model_prefix": "",
        "model_suffix": "",
        "stop_tokens": hf.stop_tokens(checkpoint) or ("</s>",),
        "start_token": hf.start_token(checkpoint),
        "chat_template": hf.chat_template(checkpoint),
    }
    return PromptFormat(**{**fields, **overrides})
