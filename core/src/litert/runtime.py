"""Running a bundle on the LiteRT-LM runtime: one-shot answers and chats, streamed.

Sampling parameters come from the bundle (what the family recommends) unless the user
overrides them. The runtime's own log lines are kept off the terminal.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litert.bundle import BundleInfo, read_bundle
from litert.errors import LitertError
from litert.types import SamplerDefaults


@dataclasses.dataclass
class RunOptions:
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    system: str | None = None
    show_reasoning: bool = False
    thinking: bool | None = None
    """False passes enable_thinking=False to the chat template (Qwen3's no-think mode)."""


def effective_sampler(bundle: BundleInfo, options: RunOptions) -> SamplerDefaults:
    """The bundle's sampler parameters with the user's overrides applied."""
    base = bundle.sampler
    sampler = SamplerDefaults(
        temperature=base.temperature if options.temperature is None else options.temperature,
        top_p=base.top_p if options.top_p is None else options.top_p,
        top_k=base.top_k if options.top_k is None else options.top_k,
        max_tokens=base.max_tokens if options.max_tokens is None else options.max_tokens,
    )
    sampler.validate()
    return sampler


class ReasoningFilter:
    """Drops an empty reasoning block (`<think>\\n\\n</think>\\n\\n`) from the start of a stream.

    A non-empty block is passed through as soon as it is seen to be non-empty, so real
    reasoning still streams.
    """

    def __init__(self, tags: tuple[str, str] | None) -> None:
        self.open, self.close = tags if tags else ("", "")
        self.state = "start" if tags else "pass"
        self.buf = ""

    def feed(self, chunk: str) -> str:
        if self.state == "pass":
            return chunk
        self.buf += chunk
        if self.state == "start":
            head = self.buf.lstrip()
            if len(head) < len(self.open) and self.open.startswith(head):
                return ""
            if not head.startswith(self.open):
                return self._release()
            self.state = "inside"
        if self.state == "inside":
            head = self.buf.lstrip()[len(self.open) :]
            end = head.find(self.close)
            inner = head if end < 0 else head[:end]
            if inner.strip():
                return self._release()
            if end < 0:
                return ""
            self.buf = head[end + len(self.close) :]
            self.state = "after"
        if self.state == "after":
            self.buf = self.buf.lstrip()
            if self.buf:
                return self._release()
        return ""

    def _release(self) -> str:
        out, self.buf, self.state = self.buf, "", "pass"
        return out

    def flush(self) -> str:
        return self._release() if self.state in ("start", "pass") else ""


class Chat:
    """A conversation with a bundle; keeps its history between `send` calls."""

    def __init__(self, path: Path, options: RunOptions | None = None, log_path: Path | None = None) -> None:
        self.options = options or RunOptions()
        self.bundle = read_bundle(path)
        self.sampler = effective_sampler(self.bundle, self.options)
        self.log_path = log_path
        self._engine: Any = None
        self._conversation: Any = None
        self._open()

    def _open(self) -> None:
        import litert_lm

        from litert import store

        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        s = self.sampler
        greedy = s.temperature == 0 or s.top_k == 1
        sampler = litert_lm.SamplerConfig(
            top_k=1 if greedy else s.top_k,
            top_p=s.top_p,
            temperature=1.0 if greedy else s.temperature,
            seed=self.options.seed if self.options.seed is not None else 0,
        )
        try:
            self._engine = litert_lm.Engine(
                str(self.bundle.path),
                backend=litert_lm.Backend.CPU(),
                max_num_tokens=int(self.bundle.llm.max_num_tokens) or None,
                cache_dir=str(store.runtime_cache_dir()),
            )
            self._conversation = self._engine.create_conversation(
                sampler_config=sampler,
                system_message=self.options.system,
                max_output_tokens=s.max_tokens,
                extra_context=None if self.options.thinking is None else {"enable_thinking": self.options.thinking},
            )
        except Exception as exc:
            raise LitertError(
                f"the LiteRT-LM runtime cannot load {self.bundle.path}: {exc}",
                "reconvert the model with this version of litert",
            ) from exc

    def send(self, text: str) -> Iterator[str]:
        """Stream the model's answer to `text`, chunk by chunk."""
        tags = self.bundle.summary.get("reasoning_tags")
        filt = ReasoningFilter(None if self.options.show_reasoning or not tags else (tags[0], tags[1]))
        try:
            for message in self._conversation.send_message_async(text):
                for item in message.contents:
                    piece = getattr(item, "text", None)
                    if piece:
                        out = filt.feed(piece)
                        if out:
                            yield out
        except RuntimeError as exc:
            raise LitertError(
                f"generation failed: {exc}",
                "the prompt may be longer than the bundle's context; shorten it or reconvert with a larger "
                "--kv-cache-max-len",
            ) from exc
        rest = filt.flush()
        if rest:
            yield rest

    def close(self) -> None:
        for obj in (self._conversation, self._engine):
            if obj is not None:
                obj.close()
        self._conversation = self._engine = None

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quiet_runtime_env() -> None:
    """Ask TensorFlow-style native loggers to keep quiet before they are loaded."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
