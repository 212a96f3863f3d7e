"""Rebuild the tiny Llama checkpoint: a real Hugging Face layout in the Llama 3 style
(header-token chat template, <|begin_of_text|> written by the template, <|eot_id|> ending
turns, an untied LM head, grouped-query attention and `llama3` RoPE scaling), trained for
a few seconds on a handful of exchanges so that greedy decoding answers them.

    python build_tiny.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "Llama-tiny"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
SPECIAL = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("Hello!", "Hello! How can I help you today?"),
]


def main() -> int:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tmp = OUT.with_name(OUT.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [text for pair in QA for text in pair] + ["user", "assistant", "system", "\n\n"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|eot_id|>",
                "pad_token": "<|end_of_text|>",
            },
            indent=2,
        )
        + "\n"
    )
    (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    bos = tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=[eos, eot],
        pad_token_id=None,
    )
    model = LlamaForCausalLM(config)
    seqs = []
    for q, a in QA:
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        # The prompt tokenized alone, as at inference: it ends in "\n\n" as one token, which the
        # whole conversation tokenized at once would split ("\n" "\n" before the answer), and a
        # model trained on that split starts its answers with an empty line.
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(a + "<|eot_id|>", add_special_tokens=False)["input_ids"]
        ids = prompt_ids + answer_ids
        seqs.append((ids, [-100] * len(prompt_ids) + answer_ids))
    width = max(len(s[0]) for s in seqs)
    input_ids = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)], labels[i, : len(lab)], mask[i, : len(ids)] = torch.tensor(ids), torch.tensor(lab), 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().to(torch.bfloat16).save_pretrained(tmp)
    GenerationConfig(
        bos_token_id=bos, eos_token_id=[eos, eot], do_sample=True, temperature=0.6, top_p=0.9
    ).save_pretrained(tmp)
    shutil.rmtree(OUT, ignore_errors=True)
    tmp.rename(OUT)
    print(f"wrote {OUT} (final loss {loss.item():.4f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
