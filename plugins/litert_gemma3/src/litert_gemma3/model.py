"""Gemma3 (text) on litert's classic decoder (imports torch only when building).

What Gemma3 does differently from the Llama shape, each an override: zero-centred
RMSNorm, norms after attention and around the MLP, GELU-tanh, embeddings scaled by
sqrt(hidden), queries scaled by `query_pre_attn_scalar`, interleaved sliding/global
layers (`layer_types`, or `sliding_window_pattern` in older configs) with their own RoPE
bases, and litert-torch's Gemma3 block. Upstream's `build_model_270m/1b` hard-code the
sizes and swallow the loader's KeyError (returning None); none of that here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from litert import hf
from litert.classic import TENSOR_NAMES, ClassicDecoder
from litert.types import Checkpoint, ExportSettings

GELU_TANH = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new")


class Gemma3(ClassicDecoder):
    tie_default = True
    qk_norm = True
    qkv_transpose_before_split = True  # q, k, v fused as [all q; all k; all v]
    rope_theta_default = 1_000_000.0
    tensor_names: ClassVar[Mapping[str, str | None]] = {
        **TENSOR_NAMES,
        "pre_ff_norm": "model.layers.{}.pre_feedforward_layernorm",
        "post_ff_norm": "model.layers.{}.post_feedforward_layernorm",
    }
    model_class = "litert_gemma3.decoder:Gemma3Decoder"

    def __init__(self, checkpoint: Checkpoint, settings: ExportSettings) -> None:
        super().__init__(checkpoint, settings)
        c = self.config
        if "layer_types" not in c.raw:  # older configs: every Nth layer global
            raw = c.raw
            n = int(raw.get("sliding_window_pattern") or raw.get("_sliding_window_pattern") or 6)
            types = tuple("full_attention" if (i + 1) % n == 0 else "sliding_attention" for i in range(c.num_layers))
            self.config = dataclasses.replace(
                c,
                layer_types=types,
                sliding_window=int(raw.get("sliding_window") or 512),
                rope={t: hf.rope_parameters(raw, t) for t in set(types)},
            )

    def check(self) -> None:
        super().check()
        c = self.config
        if c.activation not in GELU_TANH:
            raise self.refuse(f"unsupported Gemma3 activation {c.activation!r}", "litert-gemma3 converts GELU-tanh")
        if c.raw.get("use_bidirectional_attention"):
            raise self.refuse("bidirectional Gemma3 (embedding) models are not text generators", "use a causal LM")
        if not c.tie_word_embeddings:
            raise self.refuse(
                "this Gemma3 checkpoint has an untied LM head (tie_word_embeddings: false)",
                "litert-gemma3 converts tied Gemma3 checkpoints, as every Gemma3 release is",
            )

    def norm(self) -> Any:
        return dataclasses.replace(super().norm(), zero_centered=True)

    def feed_forward(self, layer: int) -> Any:
        return dataclasses.replace(
            super().feed_forward(layer), pre_ff_norm_config=self.norm(), post_ff_norm_config=self.norm()
        )

    def attention(self, layer: int) -> Any:
        import litert_torch.generative.layers.model_config as cfg

        # transformers' Gemma3 never applies attn_logit_softcapping (a Gemma2 field it keeps).
        attn = super().attention(layer)
        return attn if attn.attn_type else dataclasses.replace(attn, attn_type=cfg.AttentionType.GLOBAL)

    def model_config(self) -> Any:
        return dataclasses.replace(super().model_config(), embedding_scale=self.config.hidden_size**0.5)

    def finish(self, model: Any) -> Any:
        """Scale queries by query_pre_attn_scalar**-0.5, as Gemma3 does: litert-torch's
        attention scales by head_dim**-0.5, and the query passes a zero-centred RMSNorm
        (x * (1 + w)) first, so scaling (1 + w) by sqrt(head_dim / scalar) is exact."""
        import torch

        head_dim = self.config.head_dim
        factor = math.sqrt(head_dim / float(self.config.raw.get("query_pre_attn_scalar") or head_dim))
        if factor != 1.0:
            with torch.no_grad():
                for block in model.transformer_blocks:
                    weight = block.atten_func.query_norm.weight
                    weight.copy_(factor * (1.0 + weight) - 1.0)
        return model
