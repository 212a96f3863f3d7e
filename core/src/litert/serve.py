"""`litert serve`: the OpenAI chat-completions API over stored bundles.

The HTTP side is a Starlette application run by uvicorn — a standard ASGI stack, so
routing, HTTP parsing, server-sent events and graceful shutdown are theirs, not ours.
The official runtime ships a server too (`litert-lm serve`), but it is an
`http.server` handler bound to that CLI's own model registry and import step; reusing
it would mean serving a second store. Here the models are litert's own store (or the
bundles named on the command line).

Each model gets one LiteRT-LM engine, opened on its first request and kept until the
server stops. One answer per model is generated at a time: a request waits for the
model's lock (its turn) in a worker thread, so the event loop keeps serving others.
Every request starts a fresh runtime conversation holding the request's history, so
requests never see each other's turns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from litert.errors import LitertError
from litert.runtime import (
    CONTEXT_FULL_MARKERS,
    HIDDEN_REASONING_TOKENS,
    ReasoningFilter,
    RunOptions,
    check_render,
    continue_raw,
    effective_sampler,
    has_chat_template,
    open_engine,
    sampler_config,
)
from litert.types import SamplerDefaults

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServeError(Exception):
    """A request the server refuses, answered in OpenAI's error shape with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# --- the request -----------------------------------------------------------------------


@dataclasses.dataclass
class ChatRequest:
    """A chat-completions request, checked: what a worker needs to answer it."""

    model: str
    history: list[dict[str, Any]]
    """The turns before the last message (user, assistant, tool), in order."""
    message: str | dict[str, Any]
    """The last message, which the model answers: the user's text, or a tool's result (a turn)."""
    system: str | None
    options: RunOptions
    stop: list[str]
    stream: bool
    include_usage: bool
    raw: bool = False
    """A text completion (/v1/completions): `message` is continued as it is, no chat template."""
    tools: list[dict[str, Any]] | None = None
    """Function tools offered to the model (OpenAI's shape); None: no tools."""
    tool_turns: bool = False
    """The history holds tool calls or results (the template must know tools to render them)."""


_ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 1024
"""More turns than any bundle's context holds; a longer list is refused before any work."""
MAX_STOP_CHARS = 256
"""The longest stop string (OpenAI's stops are short; a long one costs every generated token)."""


def _clean(text: str, where: str, param: str) -> str:
    """Text the runtime can take: valid Unicode (JSON lets unpaired surrogates through)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ServeError(400, f"{where} is not valid Unicode ({exc.reason} at {exc.start})", param=param) from exc
    return text


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return _clean(content, where, "messages")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ServeError(400, f"{where}: only text content parts are supported", param="messages")
            parts.append(part["text"])
        return _clean("".join(parts), where, "messages")
    raise ServeError(400, f"{where}: content must be a string or a list of text parts", param="messages")


def _number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ServeError(400, f"{name} must be {'a number' if kind is float else 'an integer'}", param=name)
    return value


def _common_checks(body: Any) -> str:
    """The body is an object naming a model, for one answer; returns the model."""
    if not isinstance(body, dict):
        raise ServeError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ServeError(400, "model is required", param="model")
    if body.get("n", 1) != 1:
        raise ServeError(400, "only n=1 is supported", param="n")
    return model


def parse_request(body: Any) -> ChatRequest:
    """Check a chat-completions body and turn it into a ChatRequest (400 on anything off)."""
    from litert import tool_calls

    model = _common_checks(body)

    def refuse(message: str, param: str) -> ServeError:
        return ServeError(400, message, param=param)

    tools = tool_calls.offered_tools(body, refuse)
    for name in ("logprobs", "top_logprobs"):
        if body.get(name):
            raise ServeError(400, f"{name} is not supported by litert serve", param=name)
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise ServeError(400, "only response_format type 'text' is supported", param="response_format")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ServeError(400, "messages must be a non-empty list", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ServeError(400, f"at most {MAX_MESSAGES} messages are accepted", param="messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
            raise ServeError(400, f"{where}: role must be one of {', '.join(_ROLES)}", param="messages")
        called = msg["role"] == "assistant" and msg.get("tool_calls")
        text = "" if called and msg.get("content") is None else _text(msg.get("content"), where)
        if msg["role"] in ("system", "developer"):
            system.append(text)
        elif called:
            turns.append(tool_calls.assistant_turn(msg, text, where, refuse))
        else:
            turns.append({"role": msg["role"], "content": text})
    if not turns or turns[-1]["role"] not in ("user", "tool"):
        raise ServeError(
            400, "the last message (after system messages) must come from the user or a tool", param="messages"
        )
    kwargs = body.get("chat_template_kwargs") or {}
    thinking = kwargs.get("enable_thinking") if isinstance(kwargs, dict) else None
    if thinking is None and body.get("reasoning_effort") == "none":
        thinking = False
    req = _request(
        body,
        model,
        turns[-1]["content"] if turns[-1]["role"] == "user" else turns[-1],
        history=turns[:-1],
        system="\n\n".join(system) if system else None,
        thinking=thinking if isinstance(thinking, bool) else None,
    )
    req.tools = tools
    req.tool_turns = any(t["role"] == "tool" or "tool_calls" in t for t in turns)
    return req


def parse_completion_request(body: Any) -> ChatRequest:
    """Check a (text) completions body: a prompt continued as it is, for base models above all."""
    model = _common_checks(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ServeError(400, "prompt must be a string (one prompt per request)", param="prompt")
    _clean(prompt, "prompt", "prompt")
    for name in ("echo", "suffix", "best_of"):
        if body.get(name) not in (None, False, 1):
            raise ServeError(400, f"{name} is not supported by litert serve", param=name)
    return _request(body, model, prompt, raw=True)


def _request(
    body: dict[str, Any],
    model: str,
    message: str,
    history: list[dict[str, Any]] | None = None,
    system: str | None = None,
    thinking: bool | None = None,
    raw: bool = False,
) -> ChatRequest:
    """The fields both endpoints share: sampler, stop strings, streaming."""
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 4:
        raise ServeError(400, "stop must be a string or a list of up to 4 non-empty strings", param="stop")
    if any(len(s) > MAX_STOP_CHARS for s in stops):
        raise ServeError(400, f"a stop string may be at most {MAX_STOP_CHARS} characters", param="stop")
    for s in stops:
        _clean(s, "stop", "stop")
    max_tokens = _number(body, "max_completion_tokens", int) or _number(body, "max_tokens", int)
    if max_tokens is not None and max_tokens < 1:
        raise ServeError(400, "max_tokens must be at least 1", param="max_tokens")
    for flag in ("stream",):
        if body.get(flag) is not None and not isinstance(body.get(flag), bool):
            raise ServeError(400, f"{flag} must be true or false", param=flag)
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ServeError(400, "stream_options must be an object", param="stream_options")
    return ChatRequest(
        model=model,
        history=history or [],
        message=message,
        system=system,
        options=RunOptions(
            temperature=_number(body, "temperature", float),
            top_p=_number(body, "top_p", float),
            top_k=_number(body, "top_k", int),
            max_tokens=max_tokens,
            seed=_number(body, "seed", int),
            thinking=thinking,
        ),
        stop=stops,
        stream=bool(body.get("stream")),
        include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        raw=raw,
    )


# --- the models ------------------------------------------------------------------------


class Model:
    """One served bundle: its engine, opened on first use and kept, and its turn lock."""

    def __init__(self, name: str, path: Path) -> None:
        from litert.bundle import read_bundle

        self.name, self.path = name, path
        self.version = file_version(path)
        self.bundle = read_bundle(path)
        self.lock = threading.Lock()
        """Held for a whole generation: requests to this model take turns."""
        self.engine: Any = None

    def ensure_engine(self) -> Any:
        """The engine, opened now if this is the model's first request (the caller holds the lock).

        It is opened on a private copy (`litert.snapshot`): the file at `path` may then be
        truncated, rewritten or removed without the engine reading a byte of it again.
        """
        if self.engine is None:
            import litert_lm

            from litert.snapshot import private_copy

            litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
            try:
                with private_copy(self.path) as copy:
                    self.engine = open_engine(copy, int(self.bundle.llm.max_num_tokens) or None, shown=self.path)
            except OSError as exc:
                raise LitertError(f"cannot copy {self.path}: {exc.strerror or exc}") from exc
        return self.engine

    def close(self, timeout: float = 10.0) -> bool:
        """Close the engine once the generation in progress (if any) has stopped; False when
        that did not happen within `timeout` seconds (an engine still loading, say)."""
        if not self.lock.acquire(timeout=timeout):
            return False
        try:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
        finally:
            self.lock.release()
        return True


def file_version(path: Path) -> tuple[int, ...] | None:
    """What tells one version of a file from another: device, inode, size, mtime (None: gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Models:
    """The served models: those named on the command line, or else the whole store (read at each request,
    so models converted while the server runs are served too)."""

    def __init__(self, given: dict[str, Path] | None = None) -> None:
        self.given = given
        self._loaded: dict[str, Model] = {}
        self._guard = threading.Lock()
        self._answering: set[Callable[[], None]] = set()
        """How to end each answer in progress (see `stop_answering`)."""
        self.stopping = False

    def answering(self, abort: Callable[[], None]) -> Callable[[], None]:
        """Register an answer in progress; returns the call that unregisters it."""
        with self._guard:
            if self.stopping:
                abort()
            self._answering.add(abort)
        return lambda: self._answering.discard(abort)

    def stop_answering(self) -> None:
        """The server is stopping (SIGTERM, Ctrl-C): every answer in progress ends now with a 503
        in OpenAI's shape (or, streamed, an error event and [DONE]) instead of being cut off."""
        with self._guard:
            self.stopping = True
            aborts = list(self._answering)
        for abort in aborts:
            abort()

    def served(self) -> dict[str, Path]:
        """`available()`, with a store that cannot be read a 500 that names no local path
        (the detail goes to the server's log)."""
        try:
            return self.available()
        except LitertError as exc:
            print(f"litert serve: the model store cannot be read: {exc}", file=sys.stderr, flush=True)
            raise ServeError(500, "the server's model store cannot be read", kind="server_error") from exc

    def available(self) -> dict[str, Path]:
        if self.given is not None:
            return dict(self.given)
        from litert import store

        return {n: Path(e["path"]) for n, e in sorted(store.load_index().items()) if Path(e["path"]).is_file()}

    def get(self, name: str) -> Model:
        paths = self.served()
        path = paths.get(name)
        if path is None:
            raise ServeError(
                404,
                f"The model '{name}' does not exist"
                + (f"; served models: {', '.join(paths)}" if paths else "; no models are served"),
                code="model_not_found",
                param="model",
            )
        with self._guard:
            model = self._loaded.get(name)
            if model is not None and (model.path != path or model.version != file_version(path)):
                # re-converted, replaced or damaged since it was opened: read it again, and let
                # the old engine go once its generation in progress (if any) ends
                old, model = model, None
                del self._loaded[name]
                threading.Thread(target=old.close, args=(-1,), name=f"litert-close-{name}", daemon=True).start()
            if model is None:
                try:
                    model = Model(name, path)
                except LitertError as exc:
                    print(f"litert serve: cannot read {name}: {exc}", file=sys.stderr, flush=True)
                    raise ServeError(
                        500, f"the model {name!r} cannot be read", code="model_load_failed", kind="server_error"
                    ) from exc
                self._loaded[name] = model
            return model

    def close(self, timeout: float = 10.0) -> bool:
        """Close every engine, waiting at most `timeout` seconds in all; False if one is still busy."""
        deadline = time.monotonic() + timeout
        return all([model.close(max(0.0, deadline - time.monotonic())) for model in list(self._loaded.values())])


# --- generating ------------------------------------------------------------------------


@dataclasses.dataclass
class Piece:
    text: str


@dataclasses.dataclass
class Finished:
    reason: str
    """"stop" (an end-of-turn token or a stop string) or "length" (max_tokens or a full context)."""
    usage: dict[str, int]
    tool_calls: list[dict[str, Any]] | None = None
    """The calls the model made, in OpenAI's shape (then `reason` is "tool_calls")."""


class StopScanner:
    """Cuts a stream at the first stop string, holding back text that may be the start of one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.held += text
        hits = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.held, self.stopped = self.held[: min(hits)], "", True
            return out
        keep = max((k for s in self.stops for k in range(1, len(s)) if self.held.endswith(s[:k])), default=0)
        out, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        return out

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


def _sampler(model: Model, req: ChatRequest) -> SamplerDefaults:
    """The bundle's sampler with the request's overrides; values the runtime cannot use are a 400."""
    try:
        return effective_sampler(model.bundle, req.options)
    except LitertError as exc:
        raise ServeError(400, exc.message) from exc


def _engine(model: Model) -> Any:
    """The model's engine (the caller holds its lock); a bundle the runtime refuses is a 500."""
    try:
        return model.ensure_engine()
    except LitertError as exc:
        print(f"litert serve: cannot open {model.name}: {exc}", file=sys.stderr, flush=True)
        raise ServeError(
            500, f"the runtime cannot open the model {model.name!r}", code="model_load_failed", kind="server_error"
        ) from exc


def generate(model: Model, req: ChatRequest, cancel: threading.Event) -> Iterator[Piece | Finished]:
    """Answer `req` on `model` (in a worker thread): text pieces as they come, then Finished."""
    if req.raw:
        yield from _continue(model, req, cancel)
        return
    if not has_chat_template(model.bundle):
        raise ServeError(
            400,
            f"{model.name} has no chat template (a base model); chat completions need one",
            code="unsupported_model",
            param="model",
        )
    last = req.message if isinstance(req.message, dict) else {"role": "user", "content": req.message}
    if req.tools or req.tool_turns:
        from litert.tool_calls import renders_tools

        if not renders_tools(model.bundle.llm.jinja_prompt_template):
            raise ServeError(
                400,
                f"{model.name}'s chat template has no tools; it cannot be offered tools or shown tool calls",
                code="tools_not_supported",
                param="tools" if req.tools else "messages",
            )
    try:
        check_render(model.bundle, req.system, [*req.history, last], tools=req.tools)
    except LitertError as exc:
        raise ServeError(400, exc.message, code="chat_template_limit", param="messages") from exc
    sampler = _sampler(model, req)
    tags = model.bundle.summary.get("reasoning_tags")
    hidden = (tags[0], tags[1]) if tags else None
    cap = sampler.max_tokens
    with model.lock:
        if cancel.is_set():
            return
        engine = _engine(model)
        try:
            tools: dict[str, Any] = {}
            if req.tools:
                from litert.tool_calls import runtime_tools

                # the runtime renders them and parses the model's calls; the client runs them
                tools = {"tools": runtime_tools(req.tools), "automatic_tool_calling": False}
            conversation = engine.create_conversation(
                messages=req.history or None,
                sampler_config=sampler_config(sampler, req.options.seed),
                system_message=req.system,
                max_output_tokens=None if cap is None else cap + (HIDDEN_REASONING_TOKENS if hidden else 0),
                extra_context=None if req.options.thinking is None else {"enable_thinking": req.options.thinking},
                **tools,
            )
        except Exception as exc:
            raise ServeError(500, f"cannot start a conversation: {exc}", kind="server_error") from exc
        try:
            yield from _answer(
                engine, conversation, req, ReasoningFilter(hidden), cap, cancel, int(model.bundle.llm.max_num_tokens)
            )
        finally:
            conversation.close()


def _answer(
    engine: Any,
    conversation: Any,
    req: ChatRequest,
    filt: ReasoningFilter,
    cap: int | None,
    cancel: threading.Event,
    context: int,
) -> Iterator[Piece | Finished]:
    scan = StopScanner(req.stop)
    decoded = shown = 0
    reason = "stop"
    calls: list[Any] = []
    prompt = _prompt_tokens(engine, conversation, req.message)
    stream = conversation.send_message_async(req.message)
    try:
        for message in stream:
            if cancel.is_set() or scan.stopped or (cap is not None and shown >= cap):
                conversation.cancel_process()  # the runtime ends the stream; drain it
                continue
            calls.extend(getattr(message, "tool_calls", None) or [])
            for item in message.contents:
                piece = getattr(item, "text", None)
                if not piece:
                    continue
                decoded += 1
                out = filt.feed(piece)
                if not out:
                    continue
                shown += 1
                text = scan.feed(out)
                if text:
                    yield Piece(text)
    except RuntimeError as exc:
        if any(marker in str(exc) for marker in CONTEXT_FULL_MARKERS):
            if decoded == 0:
                raise ServeError(
                    400,
                    f"The messages do not fit this model's context of {context} tokens;"
                    " send fewer or shorter messages (or reconvert with a larger --kv-cache-max-len)",
                    code="context_length_exceeded",
                    param="messages",
                ) from exc
            reason = "length"
        else:
            raise ServeError(500, f"generation failed: {exc}", kind="server_error") from exc
    if not scan.stopped:
        rest = scan.feed(filt.flush()) + ("" if scan.stopped else scan.flush())
        if rest:
            yield Piece(rest)
    if cap is not None and shown >= cap and not scan.stopped:
        reason = "length"
    # The runtime's count includes tokens it decoded but never sent as text (the end-of-turn
    # token; a few more after a cancel), which OpenAI counts as completion tokens too.
    completion = max(_token_count(conversation) - prompt, decoded)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if calls:
        from litert.tool_calls import openai_calls

        yield Finished("tool_calls", usage, openai_calls(calls))
    else:
        yield Finished(reason, usage)


def _continue(model: Model, req: ChatRequest, cancel: threading.Event) -> Iterator[Piece | Finished]:
    """A text completion: the prompt continued as it is, in a fresh session (no turns, no template)."""
    sampler = _sampler(model, req)
    cap = sampler.max_tokens
    with model.lock:
        if cancel.is_set():
            return
        engine = _engine(model)
        prompt = len(engine.tokenize(req.message))
        context = int(model.bundle.llm.max_num_tokens)
        if context and prompt >= context:  # the runtime's own refusal only reaches its log
            raise ServeError(
                400,
                f"The prompt ({prompt} tokens) does not fit this model's context of {context} tokens",
                code="context_length_exceeded",
                param="prompt",
            )
        steps = continue_raw(engine, sampler_config(sampler, req.options.seed), req.message, cap)
        scan, decoded, reason = StopScanner(req.stop), 0, "stop"
        try:
            for piece in steps:
                decoded += 1
                text = scan.feed(piece)
                if text:
                    yield Piece(text)
                if cancel.is_set() or scan.stopped:
                    break
            else:
                if cap is not None and decoded >= cap:
                    reason = "length"
        except RuntimeError as exc:
            if not any(marker in str(exc) for marker in CONTEXT_FULL_MARKERS):
                raise ServeError(500, f"generation failed: {exc}", kind="server_error") from exc
            reason = "length"  # the context filled up while answering
        finally:
            steps.close()  # the session is closed here, while the model's lock is held
    rest = "" if scan.stopped else scan.flush()
    if rest:
        yield Piece(rest)
    yield Finished(reason, {"prompt_tokens": prompt, "completion_tokens": decoded, "total_tokens": prompt + decoded})


def _prompt_tokens(engine: Any, conversation: Any, message: str | dict[str, Any]) -> int:
    """The prompt's length in tokens: the conversation so far plus `message`, rendered by the template."""
    turn = message if isinstance(message, dict) else {"role": "user", "content": message}
    try:
        return len(engine.tokenize(conversation.render_message_to_string(turn)))
    except RuntimeError:
        return 0


def _token_count(conversation: Any) -> int:
    try:
        return int(conversation.token_count)
    except RuntimeError:
        return 0


# --- the HTTP application --------------------------------------------------------------


_DONE = object()


def shutting_down() -> ServeError:
    """What an answer in progress gets when the server stops under it."""
    return ServeError(
        503, "the server is shutting down; send the request again once it is back",
        code="server_shutting_down", kind="server_error",
    )  # fmt: skip


async def events(models: Models, req: ChatRequest) -> AsyncIterator[Piece | Finished]:
    """`generate` run in a worker thread, its events handed to the event loop as they come.

    Leaving the iteration early (a client that hung up) tells the worker to stop.
    """
    model = models.get(req.model)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (the server stopped)
            cancel.set()

    def work() -> None:
        try:
            for event in generate(model, req, cancel):
                put(event)
        except ServeError as exc:
            put(exc)
        except Exception as exc:  # noqa: BLE001 — a bug: one line in the server's log, a 500 in OpenAI's shape
            print(f"litert serve: internal error on {req.model}: {type(exc).__name__}: {exc}", file=sys.stderr)
            put(ServeError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error"))
        finally:
            put(_DONE)

    def abort() -> None:
        cancel.set()
        put(shutting_down())

    threading.Thread(target=work, name=f"litert-serve-{req.model}", daemon=True).start()
    done = models.answering(abort)
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        done()
        cancel.set()


def make_app(models: Models) -> Any:
    """The Starlette application: /v1/models, /v1/models/{id}, /v1/chat/completions, /v1/completions."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def model_card(name: str, path: Path) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": int(path.stat().st_mtime), "owned_by": "litert"}

    async def list_models(request: Request) -> Response:
        served = models.served()
        return JSONResponse({"object": "list", "data": [model_card(n, p) for n, p in served.items()]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        model = models.get(name)
        return JSONResponse(model_card(model.name, model.path))

    async def chat_completions(request: Request) -> Response:
        return await answer(request, chat=True)

    async def completions(request: Request) -> Response:
        return await answer(request, chat=False)

    async def answer(request: Request, chat: bool) -> Response:
        """Both endpoints: the same generation, in chat.completion or text_completion shape."""
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ServeError(400, f"the request body is not valid JSON: {exc}") from exc
        req = parse_request(body) if chat else parse_completion_request(body)
        log = request.scope.setdefault("state", {}).setdefault("litert", {})  # for the access log (litert.access)
        log["model"] = req.model
        completion_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        stream = events(models, req)
        first = await anext(stream)  # errors before the first token get their own status

        def choice(text: str | None, reason: str | None, delta: bool = False) -> dict[str, Any]:
            if not chat:
                return {"index": 0, "text": text or "", "finish_reason": reason, "logprobs": None}
            content = {} if text is None else {"content": text}
            if not delta:
                content = {"role": "assistant", **content}
            return {"index": 0, ("delta" if delta else "message"): content, "finish_reason": reason, "logprobs": None}

        def envelope(choices: list[dict[str, Any]], streamed: bool, **extra: Any) -> dict[str, Any]:
            obj = f"{kind}.chunk" if streamed and chat else kind
            return {"id": completion_id, "object": obj, "created": created, "model": req.model, "choices": choices,
                    **extra}  # fmt: skip

        if not req.stream:
            text, finished = [], first
            while isinstance(finished, Piece):
                text.append(finished.text)
                finished = await anext(stream)
            await stream.aclose()
            log["usage"] = finished.usage
            answered = choice("".join(text), finished.reason)
            if finished.tool_calls:
                said = "".join(text).strip()
                answered["message"].update(content=said or None, tool_calls=finished.tool_calls)
            return JSONResponse(envelope([answered], False, usage=finished.usage))

        def sse_data(data: dict[str, Any]) -> str:
            return f"data: {json.dumps(data)}\n\n"

        async def sse() -> AsyncIterator[str]:
            try:
                if chat:  # the role first, as OpenAI does
                    first_delta = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    yield sse_data(envelope([first_delta], True))
                event: Any = first
                while True:
                    if isinstance(event, Piece):
                        yield sse_data(envelope([choice(event.text, None, delta=True)], True))
                    else:
                        log["usage"] = event.usage
                        if event.tool_calls:  # whole, in one delta (the runtime parses them at the end)
                            calls = [{"index": i, **call} for i, call in enumerate(event.tool_calls)]
                            delta = {"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}
                            yield sse_data(envelope([delta], True))
                        yield sse_data(envelope([choice(None if chat else "", event.reason, delta=True)], True))
                        if req.include_usage:
                            yield sse_data(envelope([], True, usage=event.usage))
                        break
                    event = await anext(stream)
            except ServeError as exc:
                yield sse_data(exc.body())
            finally:
                await stream.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def serve_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServeError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(ServeError(exc.status_code, message, code=code).body(), status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        body = ServeError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error").body()
        return JSONResponse(body, status_code=500)

    return Starlette(
        routes=[
            Route("/v1/models", list_models),
            Route("/v1/models/{model:path}", get_model),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
        ],
        exception_handlers={ServeError: serve_error, HTTPException: http_error, Exception: server_error},
    )


# --- the server ------------------------------------------------------------------------


def resolve_models(names: list[str]) -> Models:
    """The models named on the command line (stored names, bundle paths or Hub ids, resolved
    as `litert run` resolves them), or the whole store."""
    from litert import store
    from litert.resolution import bundle_for

    if not names:
        return Models()
    stored = store.load_index()
    given: dict[str, Path] = {}
    for name in names:
        path = bundle_for(name)
        stored = store.load_index()  # a Hub id may have just been pulled or converted
        served = name if name in stored else path.stem
        if served in given and given[served] != path:
            raise LitertError(f"two bundles would both be served as {served!r}", "rename one of the files")
        given[served] = path
    return Models(given)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear line."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise LitertError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose another --port (0 picks a free one)" if exc.errno == 98 else "check --host",
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(models: Models, host: str, port: int, api_key: str | None = None) -> None:
    """Serve until Ctrl-C (or SIGTERM): print the address, then run uvicorn on the bound socket."""
    import uvicorn

    from litert.console import Interrupted

    try:
        sock = bind(host, port)
    except socket.gaierror as exc:
        raise LitertError(f"cannot listen on {host}:{port}: {exc}", "check --host") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    names = list(models.available())
    what = ", ".join(names) if models.given is not None else f"the store ({len(names)} models now)"
    print(f"Serving {what} at http://{shown}:{bound_port}/v1 (OpenAI-compatible); Ctrl-C stops.", flush=True)
    if host not in LOOPBACK_HOSTS and not api_key:
        print(f"warning: listening on {host}: other machines can reach this server, and it asks for no key; "
              "set one with --api-key KEY or LITERT_API_KEY", file=sys.stderr, flush=True)  # fmt: skip
    from litert.access import Door

    config = uvicorn.Config(
        Door(make_app(models), api_key=api_key),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="off",
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            """SIGINT/SIGTERM: answers in progress end with a 503 (run by the loop, not inside the handler)."""
            try:
                asyncio.get_running_loop().call_soon_threadsafe(models.stop_answering)
            except RuntimeError:
                models.stop_answering()
            super().handle_exit(sig, frame)

    server = Server(config)
    try:
        server.run(sockets=[sock])
    except (Interrupted, KeyboardInterrupt):
        pass  # uvicorn stopped on the signal, then passed it on: Ctrl-C is how a server ends
    finally:
        sock.close()
        idle = models.close()
    print("Stopped.", flush=True)
    if not idle:
        # A worker is still inside the runtime (an engine loading cannot be interrupted): ending
        # the interpreter around it would crash in native code, so the process ends here.
        sys.stderr.flush()
        os._exit(0)
