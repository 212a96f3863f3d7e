"""Qwen2 on litert's classic decoder: biases on q, k and v (always; there is no
`attention_bias` key), none on o_proj; windows from `use_sliding_window` and
`max_window_layers`; everything else from config.json."""

from __future__ import annotations

from litert.classic import ClassicDecoder


class Qwen2(ClassicDecoder):
    qkv_bias = True
    output_bias = False
