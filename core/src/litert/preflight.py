"""Checks at planning, in seconds, of what the export and the runtime will need.

A checkpoint that cannot become a working bundle must be refused before minutes of
export, with one line saying why: config values the model cannot be built from, weights
that are not floating point, a chat template that does not render (or renders for ever).
The tokenizer is checked where it is loaded once (`litert.tokenizer.token_ids`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any

from litert.errors import LitertError
from litert.types import Checkpoint

# config.json fields that, where present, must be positive integers.
_POSITIVE_INTS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "head_dim",
)
FLOAT_DTYPES = frozenset({"BF16", "F16", "F32", "F64"})
"""safetensors dtypes a checkpoint's weights may have: litert converts floating-point checkpoints."""

TEMPLATE_STEP_LIMIT = 2_000_000
"""Lines of compiled template code one rendering may run (a real template runs thousands)."""
TEMPLATE_OUTPUT_LIMIT = 1_000_000
"""Characters one rendering of the check conversation may produce."""


def check_config(checkpoint: Checkpoint) -> None:
    """config.json values the model is built from are sane (types, signs, divisibility)."""
    c = checkpoint.config
    where = f"config.json of {checkpoint.source or checkpoint.path}"
    for key in _POSITIVE_INTS:
        if key not in c or c[key] is None:
            continue
        value = c[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise LitertError(
                f"{where} has {key} = {value!r}, which is not a positive integer",
                "the checkpoint's config.json is damaged; re-download it",
            )
    heads, kv = c.get("num_attention_heads"), c.get("num_key_value_heads")
    if isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        raise LitertError(
            f"{where} has {heads} attention heads, which {kv} KV heads do not divide",
            "the checkpoint's config.json is damaged; re-download it",
        )


def check_weight_header(name: str, info: Mapping[str, Any], file: str) -> None:
    """One tensor of a safetensors header: floating point, with a sane shape."""
    dtype = info.get("dtype")
    if dtype not in FLOAT_DTYPES:
        raise LitertError(
            f"{file}: tensor {name} is {dtype}, not floating point",
            "litert converts bf16, fp16 and fp32 checkpoints; quantized checkpoints (GPTQ, AWQ, …) "
            "must be de-quantized first",
        )


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def check_shapes_against_config(checkpoint: Checkpoint, shapes: Mapping[str, list[int]]) -> None:
    """The weights describe the model config.json describes: the embedding is vocab_size ×
    hidden_size and the layers are numbered 0 … num_hidden_layers - 1, where both are known."""
    c = checkpoint.config
    where = checkpoint.source or checkpoint.path
    hint = "config.json does not belong to these weights; re-download the checkpoint"
    vocab, hidden = c.get("vocab_size"), c.get("hidden_size")
    for name in ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight"):
        shape = shapes.get(name)
        if shape is not None and vocab and hidden and list(shape) != [vocab, hidden]:
            raise LitertError(
                f"{where}: {name} is {' × '.join(map(str, shape))} but config.json says "
                f"vocab_size {vocab} × hidden_size {hidden}",
                hint,
            )
    layers = {int(m.group(1)) for m in map(_LAYER.search, shapes) if m}
    n = c.get("num_hidden_layers")
    if layers and isinstance(n, int) and layers != set(range(n)):
        have = f"layers 0…{max(layers)}" if layers == set(range(max(layers) + 1)) else f"{len(layers)} layers"
        raise LitertError(f"{where}: config.json says {n} layers but the weights hold {have}", hint)


class _StepLimit:
    """Counts lines run in compiled template code; stops a rendering that runs for ever."""

    def __init__(self, limit: int) -> None:
        self.limit, self.steps = limit, 0

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != "<template>":
            return None
        return self._local

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.steps += 1
            if self.steps > self.limit:
                raise _TooLong()
        return self._local


class _TooLong(Exception):
    pass


class _TooBig(Exception):
    pass


def _environment(output_limit: int) -> Any:
    """Jinja's immutable sandbox, where one `*` cannot build a string or list beyond the limit."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Limited(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if operator == "*" and isinstance(sized, (str, list, tuple)) and isinstance(count, int):
                if len(sized) * count > output_limit:
                    raise _TooBig()
            if operator == "**" and isinstance(right, int) and right > 4096:
                raise _TooBig()
            return super().call_binop(context, operator, left, right)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = Limited(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: "26 Nov 2026"
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    return env


def _render_limited(template: str, messages: list[dict[str, Any]], output_limit: int, **context: Any) -> str:
    """Render, stopping at TEMPLATE_STEP_LIMIT lines run or `output_limit` characters written
    (counted as the output is produced, so a runaway template never holds it all)."""
    env = _environment(output_limit)
    compiled = env.from_string(template)
    limit = _StepLimit(TEMPLATE_STEP_LIMIT)
    old = sys.gettrace()
    sys.settrace(limit)
    try:
        parts, size = [], 0
        for part in compiled.generate(messages=messages, add_generation_prompt=True, **context):
            size += len(part)
            if size > output_limit:
                raise _TooBig()
            parts.append(part)
        return "".join(parts)
    finally:
        sys.settrace(old)


def check_prompt_render(template: str, messages: list[dict[str, Any]], output_limit: int, **context: Any) -> None:
    """Before the runtime renders a conversation with a bundle's template: refuse, in one line,
    a template that runs for ever or writes more than `output_limit` characters (a hostile or
    broken bundle would otherwise grow `litert run` / `litert serve` by gigabytes). Other
    rendering errors are the runtime's to report: its engine is not Jinja."""
    try:
        _render_limited(template, messages, output_limit, **context)
    except _TooLong:
        raise LitertError(
            f"the bundle's chat template did not finish rendering this conversation within "
            f"{TEMPLATE_STEP_LIMIT:,} steps (it loops)",
            "use another bundle, or convert the model again from a checkpoint with a working template",
        ) from None
    except _TooBig:
        raise LitertError(
            f"the bundle's chat template renders this conversation to more than {output_limit:,} characters",
            "use another bundle, or convert the model again from a checkpoint with a working template",
        ) from None
    except Exception:  # noqa: BLE001 - not a limit: the runtime renders (and reports) on its own
        return


def render_template(template: str, messages: list[dict[str, Any]], **context: Any) -> str:
    """Render a chat template as transformers does, in Jinja's immutable sandbox, with limits.

    Raises LitertError when the template does not parse, breaks the sandbox's rules,
    raises, runs more than TEMPLATE_STEP_LIMIT lines or writes more than
    TEMPLATE_OUTPUT_LIMIT characters.
    """
    import jinja2
    from jinja2.exceptions import SecurityError, TemplateError

    try:
        out = _render_limited(template, messages, TEMPLATE_OUTPUT_LIMIT, **context)
    except _TooBig:
        raise LitertError(
            f"the chat template writes more than {TEMPLATE_OUTPUT_LIMIT:,} characters for a one-question conversation",
            "fix the template in tokenizer_config.json or chat_template.jinja",
        ) from None
    except _TooLong:
        raise LitertError(
            f"the chat template did not finish rendering a one-question conversation within "
            f"{TEMPLATE_STEP_LIMIT:,} steps (it loops)",
            "fix the template in tokenizer_config.json or chat_template.jinja",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise LitertError(
            f"the chat template has a syntax error on line {exc.lineno}: {exc.message}",
            "fix the template in tokenizer_config.json or chat_template.jinja",
        ) from exc
    except SecurityError as exc:
        raise LitertError(
            f"the chat template does something templates may not do: {exc}",
            "use the model's original chat template",
        ) from exc
    except (TemplateError, RecursionError, OverflowError, TypeError, ValueError, AttributeError) as exc:
        raise LitertError(
            f"the chat template fails to render a simple conversation: {type(exc).__name__}: {exc}",
            "fix the template in tokenizer_config.json or chat_template.jinja",
        ) from exc
    return out


CHECK_CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]


def check_template(template: str, special_tokens: Mapping[str, str]) -> None:
    """The chat template renders a one-question conversation, in limited time and space."""
    render_template(template, CHECK_CONVERSATION, **special_tokens)


def check_block_quantization(checkpoint: Checkpoint, quantize: str) -> None:
    """Blockwise int4 needs every weight's input dimension to be a multiple of the block:
    checked from config.json at planning (the export checks the built model again)."""
    c = checkpoint.config
    dims: set[int] = set()
    for key in ("hidden_size", "intermediate_size"):
        if isinstance(c.get(key), int):
            dims.add(c[key])
    heads, head_dim = c.get("num_attention_heads"), c.get("head_dim")
    if isinstance(heads, int) and isinstance(head_dim, int):
        dims.add(heads * head_dim)
    check_block_dims(quantize, dims)


INT4_BLOCKS = {
    "dynamic_int4_block32": 32,
    "dynamic_int4_block128": 128,
    "dynamic_int4_mlp": 32,
    "dynamic_int4_int8_head": 32,
}
"""The block of each blockwise int4 recipe (the weights' input dimensions must be multiples)."""


def check_block_dims(quantize: str, dims: set[int]) -> None:
    """Refuse a blockwise int4 recipe when any of the weights' input dimensions `dims` is not a
    multiple of its block, naming them and the recipe that fits (planning and export both ask)."""
    block = INT4_BLOCKS.get(quantize)
    if block is None:
        return
    odd = sorted(d for d in dims if d % block)
    if odd:
        smaller = [r for r in ("dynamic_int4_block32",) if all(d % 32 == 0 for d in odd) and r != quantize]
        raise LitertError(
            f"{quantize} needs weight dimensions that are multiples of {block}; "
            f"this model has {', '.join(map(str, odd))}",
            f"use --quantize {smaller[0]}" if smaller else "use --quantize dynamic_int8",
        )
