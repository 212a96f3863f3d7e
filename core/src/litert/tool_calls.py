"""Tool calls in `litert serve`: OpenAI's `tools`, `tool_choice`, assistant `tool_calls` and `tool`
messages, mapped onto the LiteRT-LM runtime's conversation and back.

The runtime does the model-specific half: it renders the offered tools through the bundle's
chat template (as `tools`, the way transformers does) and parses the model's own tool-call
syntax (Qwen's `<tool_call>` JSON, Gemma's and Llama's forms) into structured calls, when
the conversation is created with the tools and `automatic_tool_calling=False` (the client,
not the server, runs the tools). What is here is the OpenAI half: checking the request,
the history's turns in the runtime's shape, and the calls in OpenAI's shape (`id`,
`arguments` as a JSON string).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

ToolError = Callable[[str, str], Exception]
"""Makes the 400 for a bad request: (message, param) -> exception (serve's ServeError)."""


def offered_tools(body: dict[str, Any], refuse: ToolError) -> list[dict[str, Any]] | None:
    """The tools to offer the model: the request's `tools`, checked, or None (no tools, or
    `tool_choice: "none"`). A choice the runtime cannot enforce ("required", a named
    function) is refused rather than silently not honoured."""
    tools = body.get("tools")
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise refuse("tools must be a list of function tools", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise refuse(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}", "tools")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise refuse(f"tools[{i}].function.name is required", "tools")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise refuse(f"tools[{i}].function.parameters must be a JSON Schema object", "tools")
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    if choice != "auto":
        raise refuse(
            "tool_choice may be 'auto' or 'none': litert serve cannot force the model to call a tool",
            "tool_choice",
        )
    if body.get("parallel_tool_calls") is not None and not isinstance(body["parallel_tool_calls"], bool):
        raise refuse("parallel_tool_calls must be true or false", "parallel_tool_calls")
    return [{"type": "function", "function": tool["function"]} for tool in tools]


def assistant_turn(msg: dict[str, Any], content: str, where: str, refuse: ToolError) -> dict[str, Any]:
    """An assistant message that called tools, as the runtime (and the chat template) takes it:
    each call's `arguments` parsed from OpenAI's JSON string into an object."""
    calls = msg.get("tool_calls")
    if not isinstance(calls, list):
        raise refuse(f"{where}.tool_calls must be a list", "messages")
    turned = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise refuse(f"{where}.tool_calls[{j}] must name a function", "messages")
        arguments = fn.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                raise refuse(f"{where}.tool_calls[{j}].function.arguments is not JSON: {exc}", "messages") from exc
        turned.append({"type": "function", "function": {"name": fn["name"], "arguments": arguments}})
    return {"role": "assistant", "content": content, "tool_calls": turned}


def renders_tools(template: str) -> bool:
    """Whether a chat template uses `tools` (and so can offer them to the model)."""
    import jinja2
    from jinja2 import meta

    try:
        return "tools" in meta.find_undeclared_variables(jinja2.Environment().parse(template))
    except jinja2.TemplateError:
        return False


def runtime_tools(offered: list[dict[str, Any]]) -> list[Any]:
    """The offered tools as the runtime's `Tool` objects: descriptions only (the client runs them)."""
    from litert_lm import interfaces

    class Described(interfaces.Tool):
        def __init__(self, description: dict[str, Any]) -> None:
            self.description = description

        def get_tool_description(self) -> dict[str, Any]:
            return self.description

        def execute(self, param: Any) -> Any:  # never called: automatic_tool_calling=False
            raise RuntimeError("litert serve does not run tools")

    return [Described(tool) for tool in offered]


def openai_calls(calls: list[Any]) -> list[dict[str, Any]]:
    """The runtime's parsed calls (`ToolCall(name, arguments)`) in OpenAI's shape."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments or {}, ensure_ascii=False)},
        }
        for call in calls
    ]
