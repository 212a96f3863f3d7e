"""Qwen3's chat template, made stable for a runtime that keeps its KV cache between turns.

Qwen3's template renders an answer differently by position: the last answer gets a
reasoning block (`<think>…</think>`, empty when there is no reasoning) and answers in
the history lose it. transformers re-renders the whole conversation each turn, so it
never notices; LiteRT-LM keeps the tokens it already prefilled and requires each new
rendering to extend the previous one, so the second turn of a chat fails ("The new
rendered template string does not start with the previous rendered template string").

The patch makes an answer's rendering depend on the answer only: with a reasoning block
when it was generated with one (its text holds `</think>`, or thinking was switched off
and the prompt supplied the empty block), plain otherwise. A conversation ending in a
user message with plain answers in its history (what callers of transformers send)
renders exactly as the original does; the runtime's own history renders as generated.
"""

from __future__ import annotations

_FLAG = "litert_think"
_PATCHES = (
    (
        "{%- set reasoning_content = '' %}",
        "{%- set reasoning_content = '' %}\n        {%- set "
        + _FLAG
        + " = '</think>' in content or (enable_thinking is defined and enable_thinking is false) %}",
    ),
    ("{%- if loop.index0 > ns.last_query_index %}", "{%- if " + _FLAG + " %}"),
    ("{%- if loop.last or (not loop.last and reasoning_content) %}", "{%- if true %}"),
)


def stable_history_template(template: str) -> str:
    """Apply the patch when the template is Qwen3's; leave other templates as they are."""
    if _FLAG in template or not all(old in template for old, _ in _PATCHES):
        return template
    for old, new in _PATCHES:
        template = template.replace(old, new, 1)
    return template
