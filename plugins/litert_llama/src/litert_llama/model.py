"""Llama on litert's classic decoder, which is Llama-shaped: nothing to change. Sizes,
heads, KV heads, head_dim, biases (`attention_bias`, `mlp_bias`), tying and RoPE (plain,
or Llama 3.1/3.2's `llama3` scaling, in either config vintage) come from config.json."""

from __future__ import annotations

from litert.classic import ClassicDecoder


class Llama(ClassicDecoder):
    pass
