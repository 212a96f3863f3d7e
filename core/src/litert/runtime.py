"""Running a bundle on the LiteRT-LM runtime: one-shot answers and chats, streamed.

Sampling parameters come from the bundle (what the family recommends) unless the user
overrides them. The runtime's own log lines are kept off the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
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
    raw: bool | None = None
    """The prompt goes to the model as text, without turn markers (base models). None: raw
    exactly when the bundle carries no chat template."""


def sampler_config(sampler: SamplerDefaults, seed: int | None) -> Any:
    """The runtime's SamplerConfig for `sampler`; temperature 0 (or top_k 1) is greedy."""
    import litert_lm

    greedy = sampler.temperature == 0 or sampler.top_k == 1
    return litert_lm.SamplerConfig(
        top_k=1 if greedy else sampler.top_k,
        top_p=sampler.top_p,
        temperature=1.0 if greedy else sampler.temperature,
        seed=seed if seed is not None else 0,
    )


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
        self.raw = self.options.raw if self.options.raw is not None else not has_chat_template(self.bundle)
        self.log_path = log_path
        self.history: list[dict[str, str]] = []
        """The turns so far (user and model), to rebuild the conversation when the context fills."""
        self.notices: list[str] = []
        """What happened that the user should be told (e.g. oldest turns dropped); the caller prints them."""
        self._engine: Any = None
        self._conversation: Any = None
        self._open()

    def _open(self) -> None:
        import litert_lm

        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        self._engine = open_engine(self.bundle.path, int(self.bundle.llm.max_num_tokens) or None)
        self._sampler_config = sampler_config(self.sampler, self.options.seed)
        if self.raw:
            return
        self._start_conversation()

    def _hidden_reasoning(self) -> tuple[str, str] | None:
        tags = self.bundle.summary.get("reasoning_tags")
        return None if self.options.show_reasoning or not tags else (tags[0], tags[1])

    def _start_conversation(self, messages: list[dict[str, str]] | None = None) -> None:
        """A runtime conversation holding `messages` as its history."""
        cap = self.sampler.max_tokens
        if cap is not None and self._hidden_reasoning():
            cap += HIDDEN_REASONING_TOKENS  # --max-tokens counts what the user sees
        if self._conversation is not None:
            self._conversation.close()
            self._conversation = None
        try:
            self._conversation = self._engine.create_conversation(
                messages=messages or None,
                sampler_config=self._sampler_config,
                system_message=self.options.system,
                max_output_tokens=cap,
                extra_context=None if self.options.thinking is None else {"enable_thinking": self.options.thinking},
            )
        except Exception as exc:
            raise LitertError(
                f"the LiteRT-LM runtime cannot start a conversation on {self.bundle.path}: {exc}",
                "reconvert the model with this version of litert",
            ) from exc

    def send(self, text: str) -> Iterator[str]:
        """Stream the model's answer to `text`, chunk by chunk.

        When the context is full, the oldest turns are dropped (a notice says so) and the
        message is sent again; a message too long on its own raises LitertError.
        """
        if self.raw:
            yield from self._send_raw(text)
            return
        check_render(self.bundle, self.options.system, [*self.history, {"role": "user", "content": text}])
        kept, dropped = list(self.history), 0
        while True:
            try:
                answer: list[str] = []
                for piece in self._stream_turn(text):
                    answer.append(piece)
                    yield piece
                self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": "".join(answer)}]
                if dropped:
                    self.notices.append(
                        f"(the context is full: the oldest {'turn was' if dropped == 1 else f'{dropped} turns were'} "
                        "dropped)"
                    )
                return
            except _ContextFull as full:
                if full.started or not self.history:
                    # The runtime's conversation is unusable after a refused message ("state 7" on every
                    # later one): start it again, with the history as it was before this message.
                    self.history = kept
                    self._start_conversation(self.history)
                    raise LitertError(
                        "the message does not fit the bundle's context"
                        + (" (the answer was cut off)" if full.started else ""),
                        "send a shorter message, or reconvert with a larger --kv-cache-max-len",
                    ) from full.__cause__
                self.history = self.history[2:]
                dropped += 1
                self._start_conversation(self.history)

    def _stream_turn(self, text: str) -> Iterator[str]:
        filt = ReasoningFilter(self._hidden_reasoning())
        cap, shown, started = self.sampler.max_tokens, 0, False
        try:
            for message in self._conversation.send_message_async(text):
                for item in message.contents:
                    piece = getattr(item, "text", None)
                    if not piece:
                        continue
                    started = True
                    out = filt.feed(piece)
                    if out and (cap is None or shown < cap):
                        shown += 1
                        yield out
        except RuntimeError as exc:
            if any(marker in str(exc) for marker in CONTEXT_FULL_MARKERS):
                raise _ContextFull(started) from exc
            raise _generation_failed(exc) from exc
        rest = filt.flush()
        if rest and (cap is None or shown < cap):
            yield rest

    def reset(self, system: str | None = None) -> None:
        """Forget the conversation (and start it with `system` as the system message, if given)."""
        if system is not None:
            self.options = dataclasses.replace(self.options, system=system)
        self.history = []
        if not self.raw:
            self._start_conversation()

    def _send_raw(self, text: str) -> Iterator[str]:
        try:
            yield from continue_raw(self._engine, self._sampler_config, text, self.sampler.max_tokens)
        except RuntimeError as exc:
            raise _generation_failed(exc) from exc

    def close(self) -> None:
        for obj in (self._conversation, self._engine):
            if obj is not None:
                obj.close()
        self._conversation = self._engine = None

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


HIDDEN_REASONING_TOKENS = 8
"""Room for an empty reasoning block (`<think>`, `\n\n`, `</think>`, `\n\n`) beyond --max-tokens."""
CONTEXT_FULL_MARKERS = ("exceeds available state entries", "Input token ids are too long")


class _ContextFull(Exception):
    def __init__(self, started: bool) -> None:
        super().__init__("context full")
        self.started = started


def _generation_failed(exc: Exception) -> LitertError:
    """The runtime's failure in one line, with the hint its message points to: a context
    that ran out, a model the runtime could not set up, or neither (then: its log)."""
    message = str(exc)
    if "allocate" in message.lower():
        hint = (
            "the runtime could not set the model up (its log is in $LITERT_HOME/logs); "
            "`litert verify` checks the bundle, and converting it again with the defaults usually mends it"
        )
    elif any(marker in message for marker in ("Task failed with state", *CONTEXT_FULL_MARKERS)):
        hint = (
            "the prompt may be longer than the bundle's context; shorten it or reconvert with a larger "
            "--kv-cache-max-len"
        )
    else:
        hint = "the runtime's log is in $LITERT_HOME/logs; `litert verify` checks the bundle"
    return LitertError(f"generation failed: {message}", hint)


def continue_raw(engine: Any, sampler_config: Any, text: str, cap: int | None) -> Iterator[str]:
    """Continue `text` as it is, without turn markers (a base model), at most `cap` tokens.

    One item per decoded token (empty when the token has no text of its own), so callers
    can count tokens. A fresh session per prompt: a base model has no turns to keep.
    """
    session = engine.create_session(apply_prompt_template=False, sampler_config=sampler_config)
    try:
        session.run_prefill([text])
        for n, responses in enumerate(session.run_decode_async(), start=1):
            yield "".join(responses.texts)
            if cap is not None and n >= cap:
                break
    finally:
        session.close()


def check_render(
    bundle: BundleInfo, system: str | None, turns: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> None:
    """Refuse, in one line, a conversation the bundle's chat template would render without
    end or into more than a prompt could ever be (see `preflight.check_prompt_render`):
    the runtime's own renderer has no such limit."""
    from litert.preflight import TEMPLATE_OUTPUT_LIMIT, check_prompt_render

    template = bundle.llm.jinja_prompt_template
    if not template:
        return
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    text = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages) + len(json.dumps(tools or []))
    # Generous: a rendered prompt must fit the context (tokens of a few characters each).
    limit = max(TEMPLATE_OUTPUT_LIMIT, 4 * text + 64 * int(bundle.llm.max_num_tokens))
    check_prompt_render(template, messages, limit, **({"tools": tools} if tools else {}))


def has_chat_template(bundle: BundleInfo) -> bool:
    """The bundle carries a chat template (bundles of base models do not)."""
    flag = bundle.summary.get("chat_template")
    if isinstance(flag, bool):
        return flag
    return bool(getattr(bundle.llm, "jinja_prompt_template", ""))


_GLOG_LINE = re.compile(r"^[EF]\d{4} [\d:.]+\s+\d+ [^\]]+\] ?(.*)$")


def native_reason(log: str) -> str | None:
    """The runtime's own reason for a failure, from its native log: its last error line."""
    errors = [m.group(1).strip() for m in map(_GLOG_LINE.match, log.splitlines()) if m and m.group(1).strip()]
    return errors[-1] if errors else None


def open_engine(path: Path, max_num_tokens: int | None, shown: Path | None = None) -> Any:
    """A LiteRT-LM engine on `path` (named `shown` in messages, for a private copy of it); when the
    runtime refuses the bundle, the one line says its reason.

    The runtime raises a generic "Failed to create engine" and writes the reason (e.g.
    "unk is not defined" for a tokenizer without an unknown piece) to its native log;
    that log is captured here and its last error line is what the user sees.
    """
    import tempfile

    import litert_lm

    from litert import store
    from litert.console import captured_native_output

    with tempfile.TemporaryDirectory(prefix="litert-engine-") as tmp:
        log = Path(tmp) / "engine.log"
        try:
            with captured_native_output(log, fds=(2,)):
                return litert_lm.Engine(
                    str(path),
                    backend=litert_lm.Backend.CPU(),
                    max_num_tokens=max_num_tokens,
                    cache_dir=str(store.runtime_cache_dir()),
                )
        except Exception as exc:
            text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
            reason = native_reason(text) or str(exc).splitlines()[0]
            raise LitertError(
                f"the LiteRT-LM runtime cannot load {shown or path}: {reason}",
                "if the bundle was made by litert, reconvert it with this version; otherwise it is damaged",
            ) from exc


def quiet_runtime_env() -> None:
    """Ask TensorFlow-style native loggers to keep quiet before they are loaded."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
