"""The chat template stored in the bundle renders in LiteRT-LM exactly as transformers'
apply_chat_template renders the model's own template: single turn, several turns, a
system message, and enable_thinking=False. Rendered through the real runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

SINGLE = [{"role": "user", "content": "What is the capital of France?"}]
SYSTEM = [{"role": "system", "content": "You are a helpful assistant."}, *SINGLE]
TURNS = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 is 4."},
    {"role": "user", "content": "What is the capital of France?"},
]
SYSTEM_TURNS = [{"role": "system", "content": "Answer briefly."}, *TURNS]

CASES = {
    "single": (SINGLE, {}),
    "system": (SYSTEM, {}),
    "turns": (TURNS, {}),
    "system+turns": (SYSTEM_TURNS, {}),
    "no-thinking": (SINGLE, {"enable_thinking": False}),
    "system-no-thinking": (SYSTEM, {"enable_thinking": False}),
}


@pytest.fixture(scope="module")
def engine(qwen3_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    import litert_lm

    engine = litert_lm.Engine(
        str(qwen3_bundle),
        backend=litert_lm.Backend.CPU(),
        max_num_tokens=256,
        cache_dir=str(tmp_path_factory.mktemp("runtime-cache")),
    )
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_qwen3: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen3)


def render_in_runtime(engine, messages: list[dict], context: dict) -> str:
    *history, last = messages
    conversation = engine.create_conversation(messages=history or None, extra_context=context or None)
    try:
        return conversation.render_message_to_string(last)
    finally:
        conversation.close()


@pytest.mark.parametrize("case", list(CASES))
def test_runtime_renders_like_transformers(case: str, engine, hf_tokenizer) -> None:
    messages, context = CASES[case]
    expected = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **context)
    assert render_in_runtime(engine, messages, context) == expected


def test_no_thinking_history_renders_as_generated(engine) -> None:
    # A deliberate difference: with thinking off, transformers drops the empty reasoning
    # block from answers in the history, but the model generated each answer after that
    # block (the generation prompt supplies it) and the runtime keeps those tokens; the
    # stored template renders the history as generated so that turns extend each other.
    rendered = render_in_runtime(engine, TURNS, {"enable_thinking": False})
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nHello! How can I help you today?<|im_end|>" in rendered
    assert rendered.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_unadapted_template_renders_wrong_in_runtime(engine, hf_tokenizer) -> None:
    # The reason for the adaptation: the runtime hands contents as parts, and the model's
    # own template then renders the user's message empty.
    import litert_lm  # noqa: F401

    raw = hf_tokenizer.chat_template
    conversation = engine.create_conversation(chat_template=raw)
    try:
        rendered = conversation.render_message_to_string(SINGLE[0])
    finally:
        conversation.close()
    assert "What is the capital" not in rendered


def test_adapted_template_is_unchanged_under_jinja2(hf_tokenizer) -> None:
    from litert.templates import adapt_chat_template

    adapted = adapt_chat_template(hf_tokenizer.chat_template)
    assert adapt_chat_template(adapted) == adapted
    for messages, context in CASES.values():
        a = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **context)
        b = hf_tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, chat_template=adapted, **context
        )
        assert a == b


@pytest.mark.parametrize("thinking", [None, False], ids=["thinking", "no-thinking"])
def test_multi_turn_chat_keeps_history_in_runtime(engine, thinking) -> None:
    # The runtime keeps its KV cache between turns and needs every rendering to extend
    # the previous one; Qwen3's original template breaks that on the second turn.
    import litert_lm

    conversation = engine.create_conversation(
        sampler_config=litert_lm.SamplerConfig(top_k=1),
        extra_context=None if thinking is None else {"enable_thinking": thinking},
    )
    try:
        answers = []
        for country in ("France", "Germany", "Italy"):
            reply = conversation.send_message(f"What is the capital of {country}?")
            answers.append("".join(part.text for part in reply.contents).split("</think>")[-1].strip())
        assert answers == [
            "The capital of France is Paris.",
            "The capital of Germany is Berlin.",
            "The capital of Italy is Rome.",
        ]
        # The history rendered by the runtime holds all three exchanges.
        rendered = conversation.render_message_to_string({"role": "user", "content": "Hello!"})
        assert rendered.count("<|im_start|>user\n") == 1  # render shows only the new message's turn
    finally:
        conversation.close()


def test_original_qwen3_template_breaks_the_second_turn(engine, hf_tokenizer) -> None:
    import litert_lm

    from litert.templates import adapt_chat_template

    conversation = engine.create_conversation(
        sampler_config=litert_lm.SamplerConfig(top_k=1), chat_template=adapt_chat_template(hf_tokenizer.chat_template)
    )
    try:
        conversation.send_message("What is the capital of France?")
        with pytest.raises(RuntimeError):
            conversation.send_message("What is the capital of Germany?")
    finally:
        conversation.close()
