"""litert-torch's Gemma3 decoder with RoPE per layer type from `litert.decoder.RopeTable`
(linear scaling on the global layers of Gemma3 4B and up) and final-logit soft-capping."""

from __future__ import annotations

from typing import Any

import torch
from litert_torch.generative.examples.gemma3 import decoder
from litert_torch.generative.layers import rotary_position_embedding as rotary


class Gemma3Decoder(decoder.Decoder):
    def __init__(self, config: Any, mask_cache_size: int = 0, layer_types: tuple = (), ropes: Any = None) -> None:
        super().__init__(config, mask_cache_size)
        self.layer_types = tuple(layer_types)
        self.ropes = dict(ropes or {})

    def forward(self, tokens: Any, input_pos: Any, kv_cache: Any, mask: Any = None, export_config: Any = None) -> Any:
        x = self.tok_embedding(tokens)
        if self.config.embedding_scale is not None:
            x = x * self.config.embedding_scale
        ropes = {}
        for i, kind in enumerate(self.layer_types):
            if kind not in ropes:
                table = self.ropes.get(kind)
                attn = self.config.block_config(i).attn_config
                ropes[kind] = (
                    table(input_pos) if table else rotary.build_rope(input_pos, attn.head_dim, attn.rotary_base)
                )
        if mask is None:
            mask = self.mask_cache.index_select(2, input_pos)[:, :, :, : kv_cache.get_max_seq_len()]
        rope = [ropes[kind] for kind in self.layer_types]
        out = self._forward_with_embeds(x, rope, mask, input_pos, kv_cache, None, export_config)
        cap = self.config.final_logit_softcap
        if cap and "logits" in out:
            out["logits"] = torch.tanh(out["logits"] / cap) * cap
        return out
