"""Rebuild the tiny Gemma3 checkpoint shipped with litert-gemma3.

A real Hugging Face layout: config.json naming Gemma3ForCausalLM with interleaved
sliding-window and global layers (the window, 16 tokens, is shorter than the test
prompts, so the sliding window is really exercised), safetensors, a SentencePiece
`tokenizer.model` with byte fallback (plus the tokenizer.json transformers derives from
it), tokenizer_config.json with Gemma3's real chat template, generation_config.json.
Trained for a few seconds so that greedy decoding answers the Paris question.

    python plugins/litert_gemma3/src/litert_gemma3/tiny/build_tiny.py
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "Gemma3-tiny"

# Gemma3's chat template, as shipped in tokenizer_config.json of google/gemma-3-270m-it and 1b-it.
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What is 2 + 2?", "2 + 2 is 4."),
    ("Hello!", "Hello! How can I help you today?"),
    ("Who are you?", "I am a tiny Gemma3 model that litert uses for its tests."),
    ("Tell me a colour.", "Blue is a nice colour."),
]
SYSTEM = "You are a helpful assistant."
EXTRA_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris, Berlin, Rome and Madrid are capitals. Café, crème brûlée, naïve, Straße, über.",
    "Numbers like 12345 and 2026 are split into digits.",
]


def conversations() -> list[list[dict]]:
    convs = []
    for q, a in QA:
        convs.append([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
        convs.append(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        )
    for i, (q1, a1) in enumerate(QA):
        q2, a2 = QA[(i + 3) % len(QA)]
        convs.append(
            [
                {"role": "user", "content": q1},
                {"role": "assistant", "content": a1},
                {"role": "user", "content": q2},
                {"role": "assistant", "content": a2},
            ]
        )
    return convs


def build_tokenizer(out: Path) -> None:
    import sentencepiece as spm

    corpus = []
    for q, a in QA:
        corpus += [q, a]
    corpus += [SYSTEM, "user", "model", *EXTRA_TEXT]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 8),
        model_writer=model,
        model_type="bpe",
        vocab_size=420,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "\n", "\n\n"],
        minloglevel=2,
    )
    (out / "tokenizer.model").write_bytes(model.getvalue())


def main() -> int:
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, GemmaTokenizer, GenerationConfig

    torch.manual_seed(0)
    tmp = OUT.with_name(OUT.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build_tokenizer(tmp)
    tok = GemmaTokenizer.from_pretrained(str(tmp), vocab_file=str(tmp / "tokenizer.model"))
    # As in Gemma3's tokenizer.json: the turn markers are special added tokens.
    from tokenizers import AddedToken

    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in ("<start_of_turn>", "<end_of_turn>")])
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(tmp)
    tc_path = tmp / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    for key in ("vocab_file", "is_local", "local_files_only"):  # machine-specific leftovers
        tc.pop(key, None)
    tc["add_bos_token"] = True
    tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")

    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        pad_token_id=0,
        eos_token_id=[1, eot],
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    config.architectures = ["Gemma3ForCausalLM"]
    model = Gemma3ForCausalLM(config)

    seqs = []
    for messages in conversations():
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        assert full.startswith(prompt)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        plen = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        seqs.append((ids, [-100] * plen + ids[plen:]))
    width = max(len(s[0]) for s in seqs)
    input_ids = torch.zeros((len(seqs), width), dtype=torch.long)
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
        bos_token_id=2, eos_token_id=[1, eot], pad_token_id=0, do_sample=True, top_k=64, top_p=0.95
    ).save_pretrained(tmp)

    reloaded = Gemma3ForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    ok = True
    for q, a in QA:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = reloaded.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=[1, eot])
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        good = text.strip() == a
        ok &= good
        print(f"{'ok ' if good else 'BAD'} {q!r} -> {text!r}", file=sys.stderr)
    if not ok:
        print("training did not converge; not replacing the shipped checkpoint", file=sys.stderr)
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    tmp.rename(OUT)
    config_json = json.loads((OUT / "config.json").read_text())
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({size} bytes, layer types {config_json.get('layer_types')})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
