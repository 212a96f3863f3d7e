"""Qwen3 on litert's classic decoder: a Llama-shaped decoder with RMSNorm on queries and
keys. Sizes, windows (`use_sliding_window`, `max_window_layers`), RoPE and biases come
from config.json; an absent `tie_word_embeddings` means untied, as in transformers."""

from __future__ import annotations

from litert.classic import ClassicDecoder


class Qwen3(ClassicDecoder):
    qk_norm = True
    qkv_transpose_before_split = True  # upstream's Qwen3 layout: the bundle matches Google's
