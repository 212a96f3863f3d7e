"""Chat templates made to render in LiteRT-LM as they do in transformers.

The LiteRT-LM runtime (0.18) renders the stored Jinja template with its own engine and
hands it each message's content as a list of parts (`[{"type": "text", "text": ...}]`)
instead of a string. Real templates test `message.content is string` or concatenate
`message.content` with strings, so unchanged they render every message empty or fail.
The preamble below rebuilds `messages` with string contents before the model's own
template runs; under transformers it changes nothing, since contents already are
strings there. Proven by rendering through the runtime in the tests.
"""

from __future__ import annotations

_PREAMBLE = (
    "{%- set _litert = namespace(messages=[]) -%}"
    "{%- for _m in messages -%}"
    "{%- if _m.content is string or _m.content is none or _m.content is undefined -%}"
    "{%- set _text = _m.content -%}"
    "{%- else -%}"
    "{%- set _parts = namespace(text='') -%}"
    "{%- for _c in _m.content -%}"
    "{%- if _c.type == 'text' -%}{%- set _parts.text = _parts.text ~ _c.text -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- set _text = _parts.text -%}"
    "{%- endif -%}"
    '{%- set _litert.messages = _litert.messages + [{"role": _m.role, "content": _text, '
    '"tool_calls": _m.tool_calls, "reasoning_content": _m.reasoning_content, '
    '"name": _m.name, "tool_call_id": _m.tool_call_id}] -%}'
    "{%- endfor -%}"
    "{%- set messages = _litert.messages -%}"
)

MARKER = "{#- adapted for LiteRT-LM by litert -#}"


def adapt_chat_template(template: str) -> str:
    """Return `template` with a preamble that gives every message a string content.

    Idempotent: an already adapted template is returned unchanged.
    """
    if template.startswith(MARKER):
        return template
    return MARKER + _PREAMBLE + template
