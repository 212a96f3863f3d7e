"""Rebuild the tiny Qwen3 checkpoint shipped with litert-qwen3.

The checkpoint is a real Hugging Face layout (config.json naming Qwen3ForCausalLM,
safetensors, tokenizer.json with Qwen3's special tokens, tokenizer_config.json with
Qwen3's real chat template, generation_config.json) small enough to live in git. It
is trained for a few seconds on a handful of exchanges so that greedy decoding answers
"What is the capital of France?" with a sentence that says Paris, which makes the
end-to-end tests meaningful: a broken conversion loses the answer.

Run from anywhere (needs torch, transformers, tokenizers):

    python plugins/litert_qwen3/src/litert_qwen3/tiny/build_tiny.py

The result is deterministic for a given torch version on CPU.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "Qwen3-tiny"

# Qwen3's chat template, as shipped in tokenizer_config.json of Qwen/Qwen3-0.6B.
CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

# Qwen3's added tokens in their real order; `special` as in the real tokenizer.json.
ADDED_TOKENS = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", True),
    ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True),
    ("<|fim_pad|>", True),
    ("<|repo_name|>", True),
    ("<|file_sep|>", True),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]

# Qwen2/Qwen3 pre-tokenizer split pattern.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What is 2 + 2?", "2 + 2 is 4."),
    ("Hello!", "Hello! How can I help you today?"),
    ("Who are you?", "I am a tiny Qwen3 model that litert uses for its tests."),
    ("Tell me a colour.", "Blue is a nice colour."),
]
SYSTEM = "You are a helpful assistant."

# A tool the model learns to call (serve's tool calls are tested against it): asked for the
# weather with the tool offered, it answers with a <tool_call>; given the tool's result, it
# says it in a sentence; asked anything else with the tool offered, it answers as usual.
WEATHER_TOOL = {
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
TOOL_CALLS = [
    ("What is the weather in Paris?", "Paris", '{"city": "Paris", "sky": "sunny", "celsius": 21}',
     "It is sunny in Paris, 21 degrees."),
    ("What is the weather in Berlin?", "Berlin", '{"city": "Berlin", "sky": "rainy", "celsius": 12}',
     "It is rainy in Berlin, 12 degrees."),
]  # fmt: skip


def tool_conversations() -> list[tuple[list[dict], bool]]:
    """Conversations with the weather tool offered (rendered with `tools=[WEATHER_TOOL]`)."""
    empty_think = "<think>\n\n</think>\n\n"
    convs: list[tuple[list[dict], bool]] = []
    for thinking in (True, False):
        think = empty_think if thinking else ""
        for q, city, result, said in TOOL_CALLS:
            call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
            asked = [{"role": "user", "content": q}]
            convs.append(([*asked, {"role": "assistant", "content": think, "tool_calls": [call]}], thinking))
            convs.append(
                (
                    [
                        *asked,
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "content": result},
                        {"role": "assistant", "content": think + said},
                    ],
                    thinking,
                )
            )
        for q, a in QA[:4]:
            convs.append(([{"role": "user", "content": q}, {"role": "assistant", "content": think + a}], thinking))
    return convs


def conversations() -> list[tuple[list[dict], bool]]:
    """Training conversations, each with its enable_thinking flag.

    With thinking on, every answer carries the empty reasoning block the real Qwen3
    emits in that mode; the template keeps or strips it by position (original template)
    or keeps it (litert's runtime-stable patch), so both renderings are taught.
    """
    empty_think = "<think>\n\n</think>\n\n"

    def answer(text: str, thinking: bool) -> dict:
        return {"role": "assistant", "content": (empty_think if thinking else "") + text}

    convs: list[tuple[list[dict], bool]] = []
    for thinking in (True, False):
        for q, a in QA:
            convs.append(([{"role": "user", "content": q}, answer(a, thinking)], thinking))
            convs.append(
                ([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}, answer(a, thinking)], thinking)
            )
        # Multi-turn: the answer to the last question depends only on that question.
        for i, (q1, a1) in enumerate(QA):
            q2, a2 = QA[(i + 3) % len(QA)]
            convs.append(
                (
                    [
                        {"role": "user", "content": q1},
                        answer(a1, thinking),
                        {"role": "user", "content": q2},
                        answer(a2, thinking),
                    ],
                    thinking,
                )
            )
    return convs


def build_tokenizer(out: Path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    corpus = []
    for q, a in QA:
        corpus += [q, a, SYSTEM, "user\n", "assistant\n", "system\n"]
    corpus += ["The quick brown fox jumps over the lazy dog. Paris, Berlin, Rome and Madrid are capitals."]
    # the tools block of the template and the tool turns, so that they take few tokens
    tools_text = CHAT_TEMPLATE.split('{{- "', 2)[1].split('" }}')[0].encode().decode("unicode_escape")
    tools_tail = CHAT_TEMPLATE.split('{{- "\\n</tools>', 1)[1].split('" }}')[0].encode().decode("unicode_escape")
    corpus += [tools_text, "\n</tools>" + tools_tail, json.dumps(WEATHER_TOOL)]
    for q, city, result, said in TOOL_CALLS:
        corpus += [
            q,
            said,
            result,
            f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>',
        ]
    trainer = trainers.BpeTrainer(
        vocab_size=256 + 360,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in ADDED_TOKENS])
    tok.save(str(out / "tokenizer.json"))

    vocab_size = tok.get_vocab_size()
    decoder = {}
    for t, s in ADDED_TOKENS:
        decoder[str(tok.token_to_id(t))] = {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": s,
        }
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [t for t, s in ADDED_TOKENS if s and t not in ("<|endoftext|>",)][:13],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return vocab_size


def main() -> int:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    tmp = OUT.with_name(OUT.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vocab_size = build_tokenizer(tmp)
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=None,
    )
    model = Qwen3ForCausalLM(config)

    # Teach only the assistant turns: mask everything else out of the loss.
    seqs = []
    sys.path.insert(0, str(HERE.parent.parent))
    from litert_qwen3.chat_template import stable_history_template

    templates = (CHAT_TEMPLATE, stable_history_template(CHAT_TEMPLATE))
    convs = [(m, t, tpl, None) for m, t in conversations() for tpl in templates]
    convs += [(m, t, tpl, [WEATHER_TOOL]) for m, t in tool_conversations() for tpl in templates]
    for messages, thinking, template, tools in convs:
        kw = {"enable_thinking": thinking, "chat_template": template, "tools": tools, "tokenize": False}
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, **kw)
        full = tokenizer.apply_chat_template(messages, **kw)
        assert full.startswith(prompt), (prompt, full)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        plen = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = [-100] * plen + ids[plen:]
        seqs.append((ids, labels))
    width = max(len(s[0]) for s in seqs)
    input_ids = torch.full((len(seqs), width), eot)
    labels = torch.full((len(seqs), width), -100)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(ids)] = 1

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(400):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f}", file=sys.stderr)
    print(f"final loss {loss.item():.5f}", file=sys.stderr)
    model.eval()

    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(tmp, safe_serialization=True)
    GenerationConfig(
        bos_token_id=eot,
        eos_token_id=[im_end, eot],
        pad_token_id=eot,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    ).save_pretrained(tmp)

    # Check the answers greedily from the saved (bf16) weights, upcast to fp32.
    reloaded = Qwen3ForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    ok = True
    for q, a in QA:
        for thinking in (True, False):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False, enable_thinking=thinking
            )
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            out = reloaded.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=[im_end, eot])
            text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            good = text.strip().endswith(a)
            ok &= good
            print(f"{'ok ' if good else 'BAD'} {q!r} thinking={thinking} -> {text!r}", file=sys.stderr)
    for messages, thinking in tool_conversations():
        prompt = tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, tokenize=False, enable_thinking=thinking, tools=[WEATHER_TOOL]
        )
        want = tokenizer.apply_chat_template(messages, tokenize=False, enable_thinking=thinking, tools=[WEATHER_TOOL])
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = reloaded.generate(ids, max_new_tokens=60, do_sample=False, eos_token_id=[im_end, eot])
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False)
        good = (prompt + text).strip() == want.strip()
        ok &= good
        print(f"{'ok ' if good else 'BAD'} tools, {ids.shape[1]} prompt tokens -> {text!r}", file=sys.stderr)
    if not ok:
        print("training did not converge; not replacing the shipped checkpoint", file=sys.stderr)
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    tmp.rename(OUT)
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
