"""Phi-3 on litert's classic decoder: q/k/v fused in one `qkv_proj` and gate/up in one
`gate_up_proj` (split as they are read), `sliding_window` on every layer. Partial rotary
(Phi-4-mini: 0.75) and LongRoPE are computed by the base class; LongRoPE is exact up to
`original_max_position_embeddings`, and a longer --kv-cache-max-len is refused at planning."""

from __future__ import annotations

from litert.classic import ClassicDecoder


class Phi3(ClassicDecoder):
    windowed = True
    fused_qkv = "model.layers.{}.self_attn.qkv_proj"
    fused_gate_up = "model.layers.{}.mlp.gate_up_proj"
