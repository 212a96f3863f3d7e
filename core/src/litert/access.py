"""`litert serve`'s door: the API key, the request size limit and the access log, as one
ASGI middleware around the application (so they hold for every route, streamed or not).

- API key (`--api-key` or LITERT_API_KEY): every /v1 request carries `Authorization:
  Bearer KEY`, else a 401 in OpenAI's shape (`invalid_api_key`), compared in constant time.
- Body size: a request body over MAX_BODY_BYTES is a 413 before it is read whole (by its
  Content-Length, or as it streams in).
- Access log: one line per request on stderr when it ends, as uvicorn's and ollama's are:
  time, method, path, model, status, prompt and completion tokens, seconds, tokens/s. The
  handler leaves the model and the usage in `scope["state"]["litert"]`.
"""

from __future__ import annotations

import hmac
import json
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MAX_BODY_BYTES", "Door"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""4 MiB: far more text than any bundle's context holds, far less than what hurts the server."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, json.dumps(body).encode()


class _TooLarge(Exception):
    pass


class Door:
    """The middleware: `Door(app, api_key=None, log=sys.stderr)`."""

    def __init__(self, app: Any, api_key: str | None = None, log: Any = None) -> None:
        self.app = app
        self.api_key = api_key
        self.log = log if log is not None else sys.stderr

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state = scope.setdefault("state", {}).setdefault("litert", {})
        status = {"code": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                await self._reply(sending, *refusal)
                return
            received = {"bytes": 0}

            async def receiving() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    received["bytes"] += len(message.get("body", b""))
                    if received["bytes"] > MAX_BODY_BYTES:
                        raise _TooLarge
                return message

            try:
                await self.app(scope, receiving, sending)
            except _TooLarge:
                if status["code"] == 0:
                    await self._reply(sending, *self._too_large())
        finally:
            self._log(scope, status["code"], state, time.monotonic() - started)

    def _refusal(self, scope: Scope) -> tuple[int, bytes] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and scope.get("path", "").startswith("/v1"):
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return _error(401, "Incorrect or missing API key: send Authorization: Bearer KEY", "invalid_api_key")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return self._too_large()
        return None

    @staticmethod
    def _too_large() -> tuple[int, bytes]:
        return _error(
            413, f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB", "request_too_large"
        )

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _log(self, scope: Scope, status: int, state: dict[str, Any], seconds: float) -> None:
        usage = state.get("usage") or {}
        parts = [
            time.strftime("%Y-%m-%d %H:%M:%S"),
            scope.get("method", "?"),
            scope.get("path", "?"),
            state.get("model", "-"),
            str(status or "-"),
        ]
        if usage:
            done = usage.get("completion_tokens", 0)
            parts += [
                f"prompt {usage.get('prompt_tokens', 0)}",
                f"completion {done}",
                f"{seconds:.2f} s",
                f"{done / seconds:.1f} tok/s" if seconds > 0 else "",
            ]
        else:
            parts.append(f"{seconds:.2f} s")
        try:
            print(" ".join(p for p in parts if p), file=self.log, flush=True)
        except (OSError, ValueError):  # a closed stderr must not fail the request
            pass
