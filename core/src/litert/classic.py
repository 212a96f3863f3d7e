"""`ClassicDecoder`: a family's model on litert-torch's classic generative layers, built
from config.json. A plugin subclasses it once per architecture and overrides only what
its family does differently (convert_hf_to_gguf's pattern: one class per architecture,
a variant overrides one method or attribute).

The base class is a Llama-shaped decoder: RMSNorm before attention and MLP, a gated MLP,
separate q/k/v/o projections, a tied or untied LM head; and everything config.json can
switch on in that shape: grouped-query attention, a head_dim of its own, attention and
MLP biases, RoPE of every type transformers has (default, linear, dynamic, yarn,
longrope, llama3) and partial rotary, sliding windows (on every layer, or per
`layer_types`), final-logit soft-capping. Example, a whole family::

    from litert.classic import ClassicDecoder

    class Qwen2(ClassicDecoder):
        tie_default = True      # Qwen2 configs without tie_word_embeddings are tied
        qkv_bias = True         # q/k/v always have biases; o_proj never
        output_bias = False

and in the plugin: ``PluginManifest(..., model="litert_qwen2.model:Qwen2")`` (the core
builds it), or ``Qwen2(claim.checkpoint, settings).build()`` from your own `build_model`.

Import-light: torch, litert_torch and transformers are imported inside the methods that
build, so `check()` can run at planning (the `check_settings` hook) in milliseconds.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from litert import hf
from litert.errors import LitertError
from litert.types import Checkpoint, ExportSettings

__all__ = ["ACTIVATIONS", "GELU_TANH", "ROPE_TYPES", "TENSOR_NAMES", "ClassicDecoder", "GemmaDecoder"]

ACTIVATIONS: dict[str, str] = {
    "silu": "SILU",
    "swish": "SILU",
    "gelu": "GELU",
    "gelu_pytorch_tanh": "GELU_TANH",
    "gelu_tanh": "GELU_TANH",
    "gelu_new": "GELU_TANH",
}
"""config.json's `hidden_act` -> litert-torch's ActivationType name (as transformers computes them)."""

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")
"""RoPE types computed exactly (with transformers' own functions), within the limits `check` names."""

TENSOR_NAMES: dict[str, str | None] = {
    "embedding": "model.embed_tokens",
    "final_norm": "model.norm",
    "lm_head": "lm_head",
    "attn_query_proj": "model.layers.{}.self_attn.q_proj",
    "attn_key_proj": "model.layers.{}.self_attn.k_proj",
    "attn_value_proj": "model.layers.{}.self_attn.v_proj",
    "attn_output_proj": "model.layers.{}.self_attn.o_proj",
    "ff_gate_proj": "model.layers.{}.mlp.gate_proj",
    "ff_up_proj": "model.layers.{}.mlp.up_proj",
    "ff_down_proj": "model.layers.{}.mlp.down_proj",
    "pre_attn_norm": "model.layers.{}.input_layernorm",
    "post_attn_norm": "model.layers.{}.post_attention_layernorm",
}
"""The Llama layout of transformers' checkpoints, in litert-torch's TensorNames fields."""


class ClassicDecoder:
    """A decoder-only transformer from config.json on litert-torch's classic layers.

    Class attributes are the family's knobs; methods are the steps, each overridable.
    """

    tie_default: ClassVar[bool] = False
    """What an absent `tie_word_embeddings` means (transformers' default for the architecture)."""
    windowed: ClassVar[bool] = False
    """The family applies config.json's `sliding_window` to every layer when there are no
    `layer_types` (Mistral, Phi-3); Llama's transformers code ignores the key."""
    qkv_bias: ClassVar[bool | None] = None
    """Biases on q/k/v; None: config.json's `attention_bias`."""
    output_bias: ClassVar[bool | None] = None
    """A bias on o_proj; None: config.json's `attention_bias` (transformers biases o_proj with it)."""
    qk_norm: ClassVar[bool] = False
    """RMSNorm on queries and keys per head (Qwen3, Gemma3)."""
    qkv_transpose_before_split: ClassVar[bool] = False
    """litert-torch's fused-q/k/v layout switch (Qwen3's upstream builder sets it; bytes only)."""
    tensor_names: ClassVar[Mapping[str, str | None]] = TENSOR_NAMES
    """Where each tensor is in the checkpoint (litert-torch TensorNames fields)."""
    fused_qkv: ClassVar[str | None] = None
    """A fused q/k/v projection in the checkpoint, e.g. "model.layers.{}.self_attn.qkv_proj"
    (Phi-3): split into the q/k/v names of `tensor_names` as it is read."""
    fused_gate_up: ClassVar[str | None] = None
    """A fused gate/up projection, e.g. "model.layers.{}.mlp.gate_up_proj" (Phi-3): split likewise."""
    unused: ClassVar[Mapping[str, str]] = {}
    """Checkpoint tensors the model does without on purpose: regex -> why (see load_weights)."""
    rope_theta_default: ClassVar[float] = 10000.0
    """The RoPE base when config.json has none (transformers' default for the architecture)."""
    model_class: ClassVar[str] = "litert.decoder:Decoder"
    """The torch module built ("module:Class"); it takes (config, mask_cache_size, layer_types, ropes)."""

    def __init__(self, checkpoint: Checkpoint, settings: ExportSettings) -> None:
        self.checkpoint = checkpoint
        self.settings = settings
        self.config = hf.decoder_config(checkpoint, tie_default=self.tie_default, windowed=self.windowed)

    # -- planning (no torch) -------------------------------------------------------------

    def refuse(self, what: str, hint: str) -> LitertError:
        """A one-line refusal naming the checkpoint."""
        return LitertError(f"{self.checkpoint.source or self.checkpoint.path}: {what}", hint)

    def check(self) -> None:
        """Refuse what this model cannot compute exactly, at planning; `build` calls it too.

        Refused: an activation litert-torch has no kernel for; a RoPE type outside
        ROPE_TYPES; longrope or dynamic RoPE with a context (--kv-cache-max-len) beyond the
        original one, where transformers switches to other frequencies mid-sequence.
        """
        c = self.config
        if c.activation not in ACTIVATIONS:
            raise self.refuse(f"activation {c.activation!r} is not supported", f"supported: {', '.join(ACTIVATIONS)}")
        context = max(self.settings.kv_cache_max_len, max(self.settings.prefill_lengths))
        for rope in c.rope.values():
            kind = rope["rope_type"]
            if kind not in ROPE_TYPES:
                raise self.refuse(f"RoPE type {kind!r} is not supported", f"supported: {', '.join(ROPE_TYPES)}")
            limit = {
                "longrope": rope.get("original_max_position_embeddings") or c.max_position_embeddings,
                "dynamic": c.max_position_embeddings,
            }.get(kind)
            if limit is not None and context > int(limit):
                raise self.refuse(
                    f"{kind} RoPE changes its frequencies beyond {limit} tokens, and a bundle with a context of "
                    f"{context} would compute other positions than the model does",
                    f"pass --kv-cache-max-len {limit} or less",
                )

    # -- the litert-torch ModelConfig ----------------------------------------------------

    def norm(self) -> Any:
        """The RMSNorm used everywhere (pre-attention, post-attention, final, q/k)."""
        import litert_torch.generative.layers.model_config as cfg

        return cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=self.config.rms_norm_eps)

    def attention(self, layer: int) -> Any:
        """The AttentionConfig of layer `layer`."""
        import litert_torch.generative.layers.model_config as cfg

        c = self.config
        layer_type = c.layer_types[layer]
        rope = c.rope[layer_type]
        qkv_bias = c.attention_bias if self.qkv_bias is None else self.qkv_bias
        extra: dict[str, Any] = {}
        if self.qk_norm:
            extra.update(query_norm_config=self.norm(), key_norm_config=self.norm())
        if layer_type == "sliding_attention":
            extra.update(attn_type=cfg.AttentionType.LOCAL_SLIDING, sliding_window_size=c.sliding_window)
        theta = rope["rope_theta"] if rope["rope_theta"] is not None else self.rope_theta_default
        return cfg.AttentionConfig(
            num_heads=c.num_heads,
            head_dim=c.head_dim,
            num_query_groups=c.num_kv_heads,
            rotary_base=int(theta) if float(theta).is_integer() else theta,
            rotary_percentage=rope["partial_rotary_factor"],
            qkv_use_bias=qkv_bias,
            output_proj_use_bias=c.attention_bias if self.output_bias is None else self.output_bias,
            qkv_transpose_before_split=self.qkv_transpose_before_split,
            qkv_fused_interleaved=not self.qkv_transpose_before_split,
            **extra,
        )

    def feed_forward(self, layer: int) -> Any:
        """The FeedForwardConfig of layer `layer`: a gated MLP with the config's activation."""
        import litert_torch.generative.layers.model_config as cfg

        return cfg.FeedForwardConfig(
            type=cfg.FeedForwardType.GATED,
            activation=cfg.ActivationConfig(getattr(cfg.ActivationType, ACTIVATIONS[self.config.activation])),
            intermediate_size=self.config.intermediate_size,
            use_bias=self.config.mlp_bias,
        )

    def block(self, layer: int) -> Any:
        """The TransformerBlockConfig of layer `layer`: norm, attention, norm, MLP."""
        import litert_torch.generative.layers.model_config as cfg

        return cfg.TransformerBlockConfig(
            attn_config=self.attention(layer),
            ff_config=self.feed_forward(layer),
            pre_attention_norm_config=self.norm(),
            post_attention_norm_config=self.norm(),
        )

    def model_config(self) -> Any:
        """The whole litert-torch ModelConfig."""
        import litert_torch.generative.layers.model_config as cfg

        c = self.config
        softcap = c.raw.get("final_logit_softcapping")
        return cfg.ModelConfig(
            vocab_size=c.vocab_size,
            num_layers=c.num_layers,
            max_seq_len=max(self.settings.kv_cache_max_len, max(self.settings.prefill_lengths)),
            embedding_dim=c.hidden_size,
            block_configs=[self.block(i) for i in range(c.num_layers)],
            final_norm_config=self.norm(),
            lm_head_share_weight_with_embedding=c.tie_word_embeddings,
            final_logit_softcap=float(softcap) if softcap else None,
        )

    # -- weights and the module ----------------------------------------------------------

    def names(self) -> Any:
        """litert-torch TensorNames for this checkpoint (no lm_head when tied)."""
        from litert_torch.generative.utilities import loader

        fields = dict(self.tensor_names)
        if self.qk_norm:
            fields.setdefault("attn_query_norm", "model.layers.{}.self_attn.q_norm")
            fields.setdefault("attn_key_norm", "model.layers.{}.self_attn.k_norm")
        names = loader.ModelLoader.TensorNames(**fields)
        if self.config.tie_word_embeddings:
            names = copy.copy(names)
            names.lm_head = None
        return names

    def splits(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """Fused checkpoint tensors -> the parts they are split into (name, rows), per layer."""
        c = self.config
        out: dict[str, tuple[tuple[str, int], ...]] = {}
        names = self.tensor_names
        if self.fused_qkv:
            q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
            parts = ((names["attn_query_proj"], q), (names["attn_key_proj"], kv), (names["attn_value_proj"], kv))
            out[self.fused_qkv] = tuple((str(n), rows) for n, rows in parts)
        if self.fused_gate_up:
            rows = c.intermediate_size
            out[self.fused_gate_up] = ((str(names["ff_gate_proj"]), rows), (str(names["ff_up_proj"]), rows))
        return out

    def rope_tables(self) -> dict[str, Any]:
        """Layer type -> RopeTable from transformers' RoPE functions, or None for plain RoPE
        (computed by litert-torch, as upstream's bundles are)."""
        tables: dict[str, Any] = {}
        for layer_type, rope in self.config.rope.items():
            plain = rope["rope_type"] == "default" and rope["partial_rotary_factor"] == 1.0
            tables[layer_type] = None if plain else self._transformers_rope(layer_type)
        return tables

    def _transformers_rope(self, layer_type: str) -> Any:
        import torch

        from litert.decoder import RopeTable

        rope = self.config.rope[layer_type]
        if rope["rope_type"] == "default":  # partial rotary: transformers' per-model default, written out
            theta = rope["rope_theta"] if rope["rope_theta"] is not None else self.rope_theta_default
            dim = int(self.config.head_dim * rope["partial_rotary_factor"])
            return RopeTable(1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), 1.0)
        from transformers import AutoConfig
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        hf_config = AutoConfig.from_pretrained(self.checkpoint.path, trust_remote_code=False).get_text_config()
        keyed = layer_type in (getattr(hf_config, "rope_parameters", None) or {})
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope["rope_type"]](
            hf_config, None, layer_type=layer_type if keyed else None
        )
        return RopeTable(inv_freq, scaling)

    def module(self, config: Any) -> Any:
        """The torch module for `config`, weights allocated but not initialised."""
        import importlib

        from litert.modeling import skip_init

        module_name, _, class_name = self.model_class.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        mask_cache = 0 if self.settings.mask_as_input else self.settings.kv_cache_max_len
        with skip_init():
            return cls(config, mask_cache, layer_types=self.config.layer_types, ropes=self.rope_tables())

    def finish(self, model: Any) -> Any:
        """After the weights are loaded: a family's own adjustment (e.g. Gemma's query scale)."""
        return model

    def build(self) -> Any:
        """Check, make the ModelConfig, build the module and load the checkpoint into it."""
        from litert.modeling import load_weights

        self.check()
        model = self.module(self.model_config())
        model = load_weights(
            model,
            self.checkpoint,
            self.names(),
            tied_lm_head=self.config.tie_word_embeddings,
            unused=self.unused,
            split=self.splits(),
        )
        return self.finish(model)


GELU_TANH = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new")


class GemmaDecoder(ClassicDecoder):
    """The Gemma shape (Gemma 2/3 text): zero-centred RMSNorm, norms after attention and
    around the MLP, GELU-tanh, embeddings scaled by sqrt(hidden), queries scaled by
    `query_pre_attn_scalar`, interleaved sliding/global layers (`layer_types`, or
    `sliding_window_pattern` in older configs) with a RoPE base each, and litert-torch's
    Gemma3 block. Subclass it as a family (litert-gemma3's Gemma3 adds nothing)."""

    tie_default = True
    qk_norm = True
    qkv_transpose_before_split = True  # q, k, v fused as [all q; all k; all v]
    rope_theta_default = 1_000_000.0
    tensor_names: ClassVar[Mapping[str, str | None]] = {
        **TENSOR_NAMES,
        "pre_ff_norm": "model.layers.{}.pre_feedforward_layernorm",
        "post_ff_norm": "model.layers.{}.post_feedforward_layernorm",
        "attn_query_norm": "model.layers.{}.self_attn.q_norm",
        "attn_key_norm": "model.layers.{}.self_attn.k_norm",
    }
    model_class = "litert.decoder:GemmaModule"

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
            raise self.refuse(f"unsupported Gemma activation {c.activation!r}", "Gemma models use GELU-tanh")
        if c.raw.get("use_bidirectional_attention"):
            raise self.refuse("bidirectional Gemma (embedding) models are not text generators", "use a causal LM")
        if not c.tie_word_embeddings:
            raise self.refuse(
                "this Gemma checkpoint has an untied LM head (tie_word_embeddings: false)",
                "the Gemma shape is tied, as every Gemma release is",
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
