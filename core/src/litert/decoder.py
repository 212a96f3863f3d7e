"""The torch module `litert.classic.ClassicDecoder` builds: litert-torch's DecoderOnlyModel
with what transformers' decoders have and it lacks (imports torch; loaded by `build`).

- RoPE per layer type, computed by transformers' own RoPE functions for scaled types
  (linear, dynamic, yarn, longrope, llama3) and partial rotary, so each is exactly
  transformers' (the default type keeps litert-torch's computation);
- sliding-window layers, the window applied to the runtime's causal mask from the
  positions, as litert-torch's Gemma3 decoder does;
- final-logit soft-capping when the config sets it.
"""

from __future__ import annotations

from typing import Any

import torch
from litert_torch.generative.examples.gemma3 import decoder as gemma3_decoder
from litert_torch.generative.layers import kv_cache as kv_utils
from litert_torch.generative.layers import model_config as cfg
from litert_torch.generative.layers import rotary_position_embedding as rotary
from litert_torch.generative.utilities import model_builder


class RopeTable:
    """cos/sin for one layer type: inverse frequencies and transformers' attention scaling."""

    def __init__(self, inv_freq: Any, scaling: float) -> None:
        self.inv_freq = inv_freq.float()
        self.scaling = float(scaling)

    def __call__(self, input_pos: Any) -> tuple[Any, Any]:
        radians = input_pos.float().unsqueeze(0).unsqueeze(-1) * self.inv_freq.unsqueeze(0).unsqueeze(0)
        cos, sin = torch.cos(radians), torch.sin(radians)
        if self.scaling != 1.0:
            cos, sin = cos * self.scaling, sin * self.scaling
        return cos, sin


class Decoder(model_builder.DecoderOnlyModel):
    """DecoderOnlyModel with per-layer RoPE (`ropes`: layer type -> RopeTable or None for
    litert-torch's plain RoPE), sliding windows and soft-capping."""

    def __init__(
        self,
        config: cfg.ModelConfig,
        mask_cache_size: int = 0,
        layer_types: tuple[str, ...] = (),
        ropes: dict[str, RopeTable | None] | None = None,
    ) -> None:
        super().__init__(config, mask_cache_size)
        self.layer_types = tuple(layer_types) or ("full_attention",) * config.num_layers
        self.ropes = dict(ropes or {})

    def _rope(self, layer_type: str, input_pos: Any, layer: int) -> Any:
        table = self.ropes.get(layer_type)
        if table is not None:
            return table(input_pos)
        attn = self.config.block_config(layer).attn_config
        return rotary.build_rope(input_pos, int(attn.rotary_percentage * attn.head_dim), attn.rotary_base)

    def forward(
        self,
        tokens: Any,
        input_pos: Any,
        kv_cache: kv_utils.KVCache,
        mask: Any = None,
        lora: Any = None,
        export_config: Any = None,
    ) -> dict[str, Any]:
        if mask is None:
            mask = self.mask_cache.index_select(2, input_pos)[:, :, :, : kv_cache.get_max_seq_len()]
        x = self.tok_embedding(tokens)
        if self.config.embedding_scale is not None:
            x = x * self.config.embedding_scale
        first = {t: self.layer_types.index(t) for t in dict.fromkeys(self.layer_types)}
        ropes = {t: self._rope(t, input_pos, i) for t, i in first.items()}
        windowed: dict[int, Any] = {}
        entries = []
        for i, block in enumerate(self.transformer_blocks):
            attn = self.config.block_config(i).attn_config
            layer_mask = mask
            if attn.sliding_window_size:
                if attn.sliding_window_size not in windowed:
                    windowed[attn.sliding_window_size] = self._window(mask, input_pos, attn.sliding_window_size)
                layer_mask = windowed[attn.sliding_window_size]
            x, entry = block(x, ropes[self.layer_types[i]], layer_mask, input_pos, kv_cache.caches[i], None)
            entries.append(entry)
        updated = kv_utils.KVCache(tuple(entries))
        if export_config is not None and torch.numel(input_pos) > 1 and not export_config.output_logits_on_prefill:
            return {"kv_cache": updated}
        logits = self.lm_head(self.final_norm(x))
        cap = self.config.final_logit_softcap
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return {"logits": logits, "kv_cache": updated}

    def _window(self, mask: Any, input_pos: Any, window: int) -> Any:
        """The causal mask with keys more than `window - 1` positions back masked out
        (transformers' sliding window: a query sees itself and the window - 1 before it)."""
        keys = torch.arange(mask.shape[-1], dtype=torch.int32).view(1, 1, -1)
        queries = input_pos.clone().to(torch.int32).view(1, -1, 1)
        inside = keys > queries - window
        blocked = torch.full_like(inside, self.config.causal_mask_value, dtype=torch.float)
        return torch.min(mask, torch.where(inside, torch.zeros_like(blocked), blocked).unsqueeze(1))


class GemmaModule(gemma3_decoder.Decoder):
    """litert-torch's Gemma3 decoder with RoPE per layer type from RopeTable (linear scaling on
    the global layers of Gemma3 4B and up) and final-logit soft-capping."""

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
