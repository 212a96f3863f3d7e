"""Tiny checkpoints for plugin authors: a real Hugging Face layout, trained for a few
seconds on a handful of exchanges so that greedy decoding answers them.

A plugin ships one (its manifest's `tiny_checkpoint`; `litert demo` and the plugin kit
convert it). Its `tiny/build_tiny.py` is then a few lines::

    from pathlib import Path
    from litert.tiny import CHATML, train_tiny

    train_tiny(Path(__file__).parent / "Qwen2-tiny", "Qwen2ForCausalLM", CHATML)

The model is built by transformers from its own classes (`architecture` and its config
class), with a byte-level BPE tokenizer trained here, the format's special tokens added
and its chat template stored. Deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHATML", "PHI", "QA", "TinyFormat", "train_tiny"]

QA = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("Hello!", "Hello! How can I help you today?"),
)
"""The exchanges a tiny model learns."""


@dataclasses.dataclass(frozen=True)
class TinyFormat:
    """The chat format a tiny checkpoint is trained in."""

    chat_template: str
    special_tokens: tuple[str, ...]
    """Added to the tokenizer as special tokens, in this order."""
    eos_token: str
    """The end-of-turn token: the tokenizer's EOS and generation_config's eos_token_id."""
    pad_token: str
    roles: tuple[str, ...] = ("user", "assistant", "system")
    """Role names the tokenizer is trained on, so each is a token or two."""


CHATML = TinyFormat(
    chat_template=(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
)
"""ChatML, as Qwen and SmolLM write it."""

PHI = TinyFormat(
    chat_template=(
        "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>' + "
        "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
    special_tokens=("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
    eos_token="<|end|>",
    pad_token="<|endoftext|>",
)
"""Phi-3's turns (`<|user|>`, `<|assistant|>`, `<|end|>`)."""


def train_tiny(
    out: Path,
    architecture: str,
    fmt: TinyFormat = CHATML,
    config: Mapping[str, Any] | None = None,
    qa: tuple[tuple[str, str], ...] = QA,
    steps: int = 250,
    seed: int = 0,
) -> Path:
    """Train and write a tiny `architecture` checkpoint into `out` (replaced whole, atomically).

    :param config: config fields over the tiny defaults (hidden 64, 2 layers, 4 heads,
        2 KV heads, intermediate 128, tied embeddings), e.g. ``{"partial_rotary_factor": 0.5}``.
    :return: `out`.
    """
    import torch
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    torch.manual_seed(seed)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [text for pair in qa for text in pair] + [f"{role}\n" for role in fmt.roles]
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in fmt.special_tokens])
    tok.save(str(tmp / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": fmt.chat_template,
        "eos_token": fmt.eos_token,
        "bos_token": None,
        "pad_token": fmt.pad_token,
        "add_bos_token": False,
    }
    (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp)
    eos = tokenizer.convert_tokens_to_ids(fmt.eos_token)
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "eos_token_id": eos,
        "bos_token_id": None,
        "pad_token_id": None,
        **(config or {}),
    }
    model_class = getattr(transformers, architecture)
    config_class = model_class.config_class
    if "text_config" in getattr(config_class, "sub_configs", {}):
        # A multimodal architecture (Gemma4ForConditionalGeneration): the fields are its
        # text model's; its other towers come from config's `vision_config`, ... (None: none).
        towers = {k: fields.pop(k) for k in config_class.sub_configs if k in fields}
        fields["pad_token_id"] = tokenizer.convert_tokens_to_ids(fmt.pad_token)  # it masks the image tokens
        text_class = config_class.sub_configs["text_config"]
        if hasattr(text_class(), "vocab_size_per_layer_input"):
            fields.setdefault("vocab_size_per_layer_input", fields["vocab_size"])
        config = config_class(text_config=fields, **towers)
    else:
        if hasattr(config_class(), "vocab_size_per_layer_input"):
            fields.setdefault("vocab_size_per_layer_input", fields["vocab_size"])
        config = config_class(**fields)
    model = model_class(config)
    seqs = []
    for q, a in qa:
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        plen = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        seqs.append((ids, [-100] * plen + ids[plen:]))
    width = max(len(s[0]) for s in seqs)
    input_ids = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)], labels[i, : len(lab)], mask[i, : len(ids)] = torch.tensor(ids), torch.tensor(lab), 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(tmp)
    transformers.GenerationConfig(
        eos_token_id=eos, do_sample=True, temperature=0.7, top_p=0.9, top_k=40
    ).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {out} (final loss {loss.item():.4f})", file=sys.stderr)
    return out
