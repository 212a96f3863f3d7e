"""`litert serve`: the real server on a loopback port, spoken to by the official `openai` client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import HANG, LITERT, PARIS_PROMPT, run_cli

PARIS = "The capital of France is Paris."


class Server:
    """A `litert serve` process; `url` is its /v1 base address, read from its first line."""

    def __init__(self, *args: str | os.PathLike[str], home: Path) -> None:
        env = {**os.environ, "LITERT_HOME": str(home)}
        self.proc = subprocess.Popen(
            [LITERT, "serve", *map(str, args), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        if "http://" not in self.banner:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {self.banner!r} {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.url = self.banner.split(" at ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.client = openai.OpenAI(base_url=self.url, api_key="unused", max_retries=0, timeout=120)

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C, as a user stops it; returns (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def server(qwen3_bundle: Path, session_home: Path) -> Iterator[Server]:
    """A server over the whole store of the session (which holds the tiny Qwen3 as 'Qwen3-tiny')."""
    srv = Server(home=session_home)
    yield srv
    code, _, err = srv.stop()
    assert code == 0, err


def ask(srv: Server, content: str = PARIS_PROMPT, **kw: object) -> openai.types.chat.ChatCompletion:
    return srv.client.chat.completions.create(
        model="Qwen3-tiny", messages=[{"role": "user", "content": content}], temperature=0, **kw
    )


def test_models_lists_the_store(server: Server) -> None:
    ids = [m.id for m in server.client.models.list()]
    assert "Qwen3-tiny" in ids
    assert server.client.models.retrieve("Qwen3-tiny").owned_by == "litert"


def test_answer_not_streamed(server: Server) -> None:
    reply = ask(server)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == PARIS
    assert choice.finish_reason == "stop"
    assert reply.model == "Qwen3-tiny" and reply.object == "chat.completion"
    # 15 prompt tokens: ChatML around the question; the answer's tokens include the hidden empty
    # reasoning block and the end-of-turn token, as OpenAI counts reasoning tokens.
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens == 15
    assert usage.completion_tokens >= 7 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_answer_streamed_token_by_token(server: Server) -> None:
    stream = server.client.chat.completions.create(
        model="Qwen3-tiny", messages=[{"role": "user", "content": PARIS_PROMPT}], temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, reasons, usage = [], [], None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert "".join(pieces) == PARIS
    assert len(pieces) >= 5  # tokens as they come, not one block at the end
    assert reasons == ["stop"]
    assert usage is not None and usage.prompt_tokens == 15


def test_two_turn_conversation_renders_the_history(server: Server) -> None:
    second = "What is the capital of Germany?"
    alone = ask(server, second)
    reply = server.client.chat.completions.create(
        model="Qwen3-tiny",
        messages=[
            {"role": "user", "content": PARIS_PROMPT},
            {"role": "assistant", "content": PARIS},
            {"role": "user", "content": second},
        ],
        temperature=0,
    )
    assert reply.choices[0].message.content == "The capital of Germany is Berlin."
    assert alone.usage is not None and reply.usage is not None
    # The first exchange went into the prompt: its question and answer, in ChatML.
    assert reply.usage.prompt_tokens >= alone.usage.prompt_tokens + 14


def test_system_message(server: Server) -> None:
    reply = server.client.chat.completions.create(
        model="Qwen3-tiny",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of Spain?"}]},
        ],
        temperature=0,
    )
    assert reply.choices[0].message.content == "The capital of Spain is Madrid."


def test_max_tokens_and_stop(server: Server) -> None:
    cut = ask(server, max_tokens=3)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "The capital of"  # three visible tokens
    stopped = ask(server, stop=["Paris", "zzz"])
    assert stopped.choices[0].message.content == "The capital of France is "
    assert stopped.choices[0].finish_reason == "stop"
    streamed = server.client.chat.completions.create(
        model="Qwen3-tiny", messages=[{"role": "user", "content": PARIS_PROMPT}], temperature=0, stream=True,
        stop="France",
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "The capital of "


def test_unknown_model_is_404(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        server.client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found" and "Qwen3-tiny" in error["message"]
    with pytest.raises(openai.NotFoundError):
        server.client.models.retrieve("no-such-model")


def test_prompt_longer_than_the_context_is_400(server: Server) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            server.client.chat.completions.create(
                model="Qwen3-tiny", messages=[{"role": "user", "content": "word " * 600}], stream=stream
            )
        error = info.value.body
        assert isinstance(error, dict) and error["code"] == "context_length_exceeded", error
        assert "256 tokens" in error["message"]
    assert ask(server).choices[0].message.content == PARIS  # the model still answers


def test_two_clients_at_once_are_queued(server: Server) -> None:
    answers: dict[int, str | None] = {}

    def client(i: int) -> None:
        stream = i % 2 == 1
        if stream:
            chunks = server.client.chat.completions.create(
                model="Qwen3-tiny", messages=[{"role": "user", "content": PARIS_PROMPT}], temperature=0, stream=True
            )
            answers[i] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answers[i] = ask(server).choices[0].message.content

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == {i: PARIS for i in range(4)}


def test_bad_requests_get_openai_errors(server: Server) -> None:
    base = server.url
    bad_json = httpx.post(
        f"{base}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    for body, param in (
        ({"model": "Qwen3-tiny"}, "messages"),
        ({"model": "Qwen3-tiny", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"model": "Qwen3-tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        ({"model": "Qwen3-tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}, None),
        ({"model": "Qwen3-tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
    ):
        reply = httpx.post(f"{base}/chat/completions", json=body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["error"]["param"] == param, reply.text
    missing = httpx.get(f"{base}/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(f"{base}/chat/completions").status_code == 405


def test_named_bundle_port_in_use_and_ctrl_c(qwen3_bundle: Path, session_home: Path) -> None:
    srv = Server(qwen3_bundle, home=session_home)
    try:
        assert [m.id for m in srv.client.models.list()] == [qwen3_bundle.stem]
        reply = srv.client.chat.completions.create(
            model=qwen3_bundle.stem, messages=[{"role": "user", "content": PARIS_PROMPT}], temperature=0
        )
        assert reply.choices[0].message.content == PARIS
        busy = run_cli("serve", qwen3_bundle, "--port", str(srv.port), home=session_home, timeout=60)
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines() == [
            f"error: cannot listen on 127.0.0.1:{srv.port}: Address already in use — choose another --port "
            "(0 picks a free one)"
        ]
    finally:
        code, out, err = srv.stop()
    assert code == 0, err
    assert out.strip() == "Stopped." and "Traceback" not in err
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", srv.port), timeout=2):
        pass


def test_unknown_model_on_the_command_line(session_home: Path, tmp_path: Path) -> None:
    result = run_cli("serve", tmp_path / "missing.litertlm", home=session_home, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: there is no bundle file") and len(result.stderr.splitlines()) == 1


def test_binding_beyond_loopback_warns(qwen3_bundle: Path, session_home: Path) -> None:
    env = {**os.environ, "LITERT_HOME": str(session_home)}
    proc = subprocess.Popen(
        [LITERT, "serve", str(qwen3_bundle), "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and "http://0.0.0.0:" in proc.stdout.readline()
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "other machines can reach this server" in err


def test_text_completion_continues_the_prompt_as_it_is(server: Server) -> None:
    # /v1/completions sends the prompt without the chat template (base models): here the
    # template's own turn markers are written by hand, so the tiny model answers as in a chat,
    # reasoning block included (nothing is hidden in a raw continuation).
    prompt = f"<|im_start|>user\n{PARIS_PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    reply = server.client.completions.create(model="Qwen3-tiny", prompt=prompt, temperature=0, max_tokens=40)
    assert reply.choices[0].text == "<think>\n\n</think>\n\n" + PARIS
    assert reply.choices[0].finish_reason == "stop" and reply.object == "text_completion"
    assert reply.usage is not None and reply.usage.prompt_tokens == 15
    streamed = server.client.completions.create(
        model="Qwen3-tiny", prompt=prompt, temperature=0, max_tokens=40, stream=True
    )
    pieces = [chunk.choices[0].text for chunk in streamed if chunk.choices]
    assert "".join(pieces) == reply.choices[0].text and len(pieces) > 5
    cut = server.client.completions.create(model="Qwen3-tiny", prompt=prompt, temperature=0, max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and cut.usage is not None and cut.usage.completion_tokens == 3
    with pytest.raises(openai.BadRequestError) as info:
        server.client.completions.create(model="Qwen3-tiny", prompt="word " * 600)
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "context_length_exceeded"


def test_hostile_requests_are_refused_in_openai_shape(server: Server) -> None:
    """Limits hold before any work: a 5 MB body (413), a 1 MB stop string, an unpaired
    surrogate, a non-boolean stream, more messages than any context, max_tokens 0 (400)."""
    base, msg = server.url, [{"role": "user", "content": "hi"}]
    big = httpx.post(f"{base}/chat/completions", content=b"x" * (5 * 1024 * 1024),
                     headers={"content-type": "application/json"}, timeout=60)  # fmt: skip
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    started = time.monotonic()
    for body, param in (
        ({"model": "Qwen3-tiny", "messages": msg, "stop": "x" * 1_000_000}, "stop"),
        ({"model": "Qwen3-tiny", "messages": msg, "stream": "yes"}, "stream"),
        ({"model": "Qwen3-tiny", "messages": msg * 2000}, "messages"),
        ({"model": "Qwen3-tiny", "messages": msg, "max_tokens": 0}, "max_tokens"),
    ):
        reply = httpx.post(f"{base}/chat/completions", json=body, timeout=60)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
    surrogate = b'{"model": "Qwen3-tiny", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    reply = httpx.post(f"{base}/chat/completions", content=surrogate, headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "not valid Unicode" in reply.json()["error"]["message"]
    assert time.monotonic() - started < 60, "refusals must not wait for a generation"
    assert ask(server).choices[0].message.content == PARIS  # and the server still answers


def test_api_key_and_access_log(qwen3_bundle: Path, session_home: Path) -> None:
    env_key = {"LITERT_API_KEY": "s3cret"}
    os.environ.update(env_key)
    try:
        srv = Server(qwen3_bundle, home=session_home)
    finally:
        os.environ.pop("LITERT_API_KEY")
    try:
        refused = httpx.get(f"{srv.url}/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        wrong = openai.OpenAI(base_url=srv.url, api_key="guess", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        keyed = openai.OpenAI(base_url=srv.url, api_key="s3cret", max_retries=0, timeout=120)
        reply = keyed.chat.completions.create(
            model=qwen3_bundle.stem, messages=[{"role": "user", "content": PARIS_PROMPT}], temperature=0
        )
        assert reply.choices[0].message.content == PARIS
    finally:
        code, _, err = srv.stop()
    assert code == 0, err
    lines = [line for line in err.splitlines() if "/v1/" in line]
    assert any(f"POST /v1/chat/completions {qwen3_bundle.stem} 200 prompt 15 completion" in line and "tok/s" in line
               for line in lines), err  # fmt: skip
    assert any("GET /v1/models - 401" in line for line in lines), err


def _repacked(bundle: Path, dest: Path, template: str | None = None, stop_token: int | None = None) -> Path:
    """`bundle` with another chat template or stop token, repacked by the official litert-lm-builder."""
    import sys

    from google.protobuf import text_format
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    builder = str(Path(sys.executable).with_name("litert-lm-builder"))
    unpacked = dest.with_suffix(".unpacked")
    subprocess.run([builder, "unpack", "--input", str(bundle), "--output", str(unpacked)], check=True)
    meta_file = unpacked / "LlmMetadataProto.pbtext"
    meta = text_format.Parse(meta_file.read_text(), llm_metadata_pb2.LlmMetadata())
    if template is not None:
        meta.jinja_prompt_template = template
    if stop_token is not None:
        for stop in meta.stop_tokens:
            stop.token_ids.ids[:] = [stop_token]
    meta_file.write_text(text_format.MessageToString(meta))
    subprocess.run([builder, "toml", "--path", str(unpacked / "model.toml"), "output", "--path", str(dest)], check=True)
    return dest


def test_a_chat_template_rendering_without_limit_is_refused(qwen3_bundle: Path, tmp_path: Path) -> None:
    # A hostile (or broken) bundle: every message rendered a hundred million times. The
    # runtime's renderer has no limit (`litert run` grew to 14 GB); here it is one line, or a 400.
    template = "{% for m in messages %}{{ m.content * 100000000 }}{% endfor %}"
    hostile = _repacked(qwen3_bundle, tmp_path / "hostile.litertlm", template=template)
    home = tmp_path / "home"
    run = run_cli("run", hostile, "-p", "Hi", home=home)
    assert run.returncode == 1 and "renders this conversation to more than" in run.stderr, run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1
    srv = Server(hostile, home=home)
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            srv.client.chat.completions.create(model="hostile", messages=[{"role": "user", "content": "Hi"}])
        assert refused.value.body["code"] == "chat_template_limit"
        assert "renders this conversation" in refused.value.body["message"]
    finally:
        code, _, err = srv.stop()
    assert code == 0, err


def test_a_served_bundle_changed_in_place_takes_no_model_down(qwen3_bundle: Path, tmp_path: Path) -> None:
    # The runtime maps the bundle and reads it during requests: a file truncated under it was a
    # SIGBUS that ended the server and every model in it. Engines now run on private copies.
    import shutil

    a, b, home = tmp_path / "a.litertlm", tmp_path / "b.litertlm", tmp_path / "home"
    shutil.copy(qwen3_bundle, a)
    shutil.copy(qwen3_bundle, b)
    srv = Server(a, b, home=home)
    try:
        for name in ("a", "b"):
            answer = srv.client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": PARIS_PROMPT}]
            )
            assert answer.choices[0].message.content == PARIS
        assert [p for p in (home / "serving").rglob("*") if p.is_file()] == []  # the copies have no name
        os.truncate(a, a.stat().st_size // 2)
        with pytest.raises(openai.InternalServerError) as broken:
            srv.client.chat.completions.create(model="a", messages=[{"role": "user", "content": PARIS_PROMPT}])
        assert broken.value.body["code"] == "model_load_failed" and str(tmp_path) not in broken.value.body["message"]
        answer = srv.client.chat.completions.create(model="b", messages=[{"role": "user", "content": PARIS_PROMPT}])
        assert answer.choices[0].message.content == PARIS
        shutil.copy(qwen3_bundle, a)  # mended: read again on the next request
        answer = srv.client.chat.completions.create(model="a", messages=[{"role": "user", "content": PARIS_PROMPT}])
        assert answer.choices[0].message.content == PARIS
    finally:
        code, _, err = srv.stop()
    assert code == 0, err
    assert "cannot load" in err and "Traceback" not in err, err


def test_sigterm_mid_request_answers_503_and_stops(qwen3_bundle: Path, tmp_path: Path) -> None:
    # A bundle whose stop token the model never says answers to the end of its context, so
    # requests queue behind each other; SIGTERM lands while the first one streams.
    endless = _repacked(qwen3_bundle, tmp_path / "endless.litertlm", stop_token=7)
    srv = Server(endless, home=tmp_path / "home")
    streaming, outcomes = threading.Event(), []

    api = srv.client.with_options(max_retries=0)

    def client(i: int) -> None:
        messages = [{"role": "user", "content": PARIS_PROMPT}]
        try:
            if i % 2:
                api.chat.completions.create(model="endless", messages=messages)
            else:
                for chunk in api.chat.completions.create(model="endless", messages=messages, stream=True):
                    if chunk.choices and chunk.choices[0].delta.content:
                        streaming.set()
            outcomes.append("answered")
        except openai.APIConnectionError:
            outcomes.append("no connection")  # sent after the server stopped listening (a loaded machine)
        except openai.APIError as exc:
            outcomes.append((getattr(exc, "status_code", None), (exc.body or {}).get("code")))  # type: ignore[union-attr]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    assert streaming.wait(timeout=HANG)
    srv.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=HANG)
    out, err = srv.proc.communicate(timeout=HANG)
    assert len(outcomes) == 12, outcomes
    received = [o for o in outcomes if o != "no connection"]
    refused = [o for o in received if o != "answered"]
    assert refused and set(refused) <= {(503, "server_shutting_down"), (None, "server_shutting_down")}, outcomes
    # Every request the server received ended in its access log with an answer or a 503; a
    # connection error is only ever a request it never received (a stream cut without its
    # error event would be logged and counted twice).
    logged = re.findall(r"POST /v1/chat/completions endless (\d{3}) ", err)
    assert len(logged) == len(received) and set(logged) <= {"200", "503"}, (outcomes, err)
    assert srv.proc.returncode == 0 and "Stopped." in out, (out, err)
    assert "Traceback" not in err, err


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city."}},
            "required": ["city"],
        },
    },
}


def test_tool_calls_round_trip_with_the_openai_client(server: Server) -> None:
    # The tiny Qwen3 was trained on its template's tools branch: offered get_weather and asked
    # for the weather, it calls it; given the result, it says it.
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    called = server.client.chat.completions.create(model="Qwen3-tiny", messages=asked, tools=[WEATHER], temperature=0)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})

    # streamed: the call comes whole in one delta, then finish_reason "tool_calls"
    chunks = list(
        server.client.chat.completions.create(
            model="Qwen3-tiny", messages=[{"role": "user", "content": "What is the weather in Berlin?"}],
            tools=[WEATHER], temperature=0, stream=True,
        )
    )  # fmt: skip
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) == 1 and deltas[0][0].function.name == "get_weather"
    assert json.loads(deltas[0][0].function.arguments) == {"city": "Berlin"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # the tool's result fed back through the template: the model answers with it
    result = json.dumps({"city": "Paris", "sky": "sunny", "celsius": 21})
    history = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    answer = server.client.chat.completions.create(model="Qwen3-tiny", messages=history, tools=[WEATHER], temperature=0)
    assert answer.choices[0].message.content == "It is sunny in Paris, 21 degrees."
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls

    # offered the tool but asked something else: an ordinary answer
    plain = server.client.chat.completions.create(
        model="Qwen3-tiny", messages=[{"role": "user", "content": PARIS_PROMPT}], tools=[WEATHER], temperature=0
    )
    assert plain.choices[0].message.content == PARIS and not plain.choices[0].message.tool_calls


def test_tools_refused_where_they_cannot_be_honoured(server: Server, qwen3_bundle: Path, tmp_path: Path) -> None:
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    with pytest.raises(openai.BadRequestError) as forced:
        server.client.chat.completions.create(
            model="Qwen3-tiny", messages=asked, tools=[WEATHER], tool_choice="required"
        )
    assert forced.value.body["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as malformed:
        server.client.chat.completions.create(model="Qwen3-tiny", messages=asked, tools=[{"type": "function"}])
    assert malformed.value.body["param"] == "tools"
    # tool_choice "none": the tools are not offered, the model answers in words
    none = server.client.chat.completions.create(
        model="Qwen3-tiny", messages=[{"role": "user", "content": PARIS_PROMPT}], tools=[WEATHER], tool_choice="none"
    )
    assert none.choices[0].message.content == PARIS

    chatml = (
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    plain = _repacked(qwen3_bundle, tmp_path / "plain.litertlm", template=chatml)
    srv = Server(plain, home=tmp_path / "home")
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            srv.client.chat.completions.create(model="plain", messages=asked, tools=[WEATHER])
        assert refused.value.body["code"] == "tools_not_supported" and refused.value.body["param"] == "tools"
    finally:
        code, _, err = srv.stop()
    assert code == 0, err
