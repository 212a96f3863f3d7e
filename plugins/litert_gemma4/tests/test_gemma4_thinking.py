"""Gemma 4's thought channel: detected from the tokenizer, recorded in the bundle's prompt
format (so `litert run --think` and the runtime's `supports_thinking` know of it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import litert_gemma4
from litert.checkpoint import load_checkpoint
from litert.types import Claim


def _with_tokens(dest: Path, tokens: list[str], config: dict | None = None) -> Path:
    shutil.copytree(litert_gemma4.TINY_CHECKPOINT, dest)
    tok = json.loads((dest / "tokenizer.json").read_text())
    next_id = max(a["id"] for a in tok["added_tokens"]) + 1
    for i, content in enumerate(tokens):
        tok["added_tokens"].append({"id": next_id + i, "content": content, "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": True})  # fmt: skip
    (dest / "tokenizer.json").write_text(json.dumps(tok))
    if config:
        tc = json.loads((dest / "tokenizer_config.json").read_text())
        (dest / "tokenizer_config.json").write_text(json.dumps({**tc, **config}))
    return dest


def _format(path: Path):
    claim = Claim(family="gemma4", checkpoint=load_checkpoint(path), architecture="Gemma4ForConditionalGeneration")
    return litert_gemma4.prompt_format(claim=claim)


def test_the_thought_channel_is_found_by_its_markers(tmp_path: Path) -> None:
    fmt = _format(_with_tokens(tmp_path / "g", ["<|channel>", "<channel|>"]))
    assert fmt.reasoning_tags == ("<|channel>thought\n", "<channel|>")
    assert fmt.runtime_model_type == "gemma4"


def test_markers_named_in_the_tokenizer_config_win(tmp_path: Path) -> None:
    named = {"extra_special_tokens": {"soc_token": "<|c>", "eoc_token": "<c|>"}}
    fmt = _format(_with_tokens(tmp_path / "g", ["<|c>", "<c|>"], named))
    assert fmt.reasoning_tags == ("<|c>thought\n", "<c|>")


def test_no_markers_no_reasoning_mode(tmp_path: Path) -> None:
    assert _format(litert_gemma4.TINY_CHECKPOINT).reasoning_tags is None
    assert _format(_with_tokens(tmp_path / "g", ["<|channel>"])).reasoning_tags is None  # one marker is not a channel
