"""Building the litert-torch Gemma3 decoder from config.json (imports torch).

Everything comes from the checkpoint's config.json: the layer pattern (`layer_types`,
or `sliding_window_pattern` in older configs), the window, the two RoPE bases,
`query_pre_attn_scalar`, soft-capping. Upstream's `build_model_270m/1b` hard-code the
sizes and swallow the loader's KeyError (returning None); this raises instead.
"""

from __future__ import annotations

import math
from typing import Any

from litert import Checkpoint, ExportSettings, LitertError, hf
from litert.modeling import load_weights, skip_init

GELU_TANH = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new")


def layer_types(config: Any, checkpoint: Checkpoint) -> list[str]:
    """Per-layer attention kind: "sliding_attention" or "full_attention"."""
    n = int(hf.require(config, "num_hidden_layers", checkpoint))
    types = config.get("layer_types")
    if types is None:
        pattern = int(config.get("sliding_window_pattern") or config.get("_sliding_window_pattern") or 6)
        types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]
    types = list(types)
    if len(types) != n or any(t not in ("sliding_attention", "full_attention") for t in types):
        raise LitertError(
            f"config.json of {checkpoint.source or checkpoint.path} has layer_types that do not describe "
            f"{n} sliding/full attention layers",
            "re-download the checkpoint",
        )
    return types


def model_config(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The litert-torch ModelConfig equivalent to the checkpoint's config.json."""
    import litert_torch.generative.layers.model_config as cfg

    c = checkpoint.config
    act = c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in GELU_TANH:
        raise LitertError(f"unsupported Gemma3 activation {act!r}", "litert-gemma3 converts GELU-tanh MLPs")
    if c.get("use_bidirectional_attention"):
        raise LitertError(
            "bidirectional Gemma3 (embedding) models are not text generators", "use a causal LM checkpoint"
        )
    if not c.get("tie_word_embeddings", True):
        raise LitertError(
            "this Gemma3 checkpoint has an untied LM head (tie_word_embeddings: false)",
            "litert-gemma3 converts tied Gemma3 checkpoints, as every Gemma3 release is",
        )
    for kind in ("full_attention", "sliding_attention"):
        scaling = hf.rope_type(c, kind)
        if scaling != "default":
            raise LitertError(
                f"this Gemma3 checkpoint uses RoPE scaling {scaling!r} on its {kind} layers "
                "(the 4B+ models do), which litert-gemma3 does not convert yet",
                "use a Gemma3 270M or 1B text checkpoint",
            )

    hidden = int(hf.require(c, "hidden_size", checkpoint))
    heads = int(hf.require(c, "num_attention_heads", checkpoint))
    head_dim = int(c.get("head_dim") or hidden // heads)
    eps = float(c.get("rms_norm_eps", 1e-6))
    window = int(hf.require(c, "sliding_window", checkpoint))
    global_theta = hf.rope_theta(c, "full_attention", default=1_000_000.0)
    local_theta = hf.rope_theta(c, "sliding_attention", default=10_000.0)
    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=eps, zero_centered=True)
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(cfg.ActivationType.GELU_TANH),
        intermediate_size=int(hf.require(c, "intermediate_size", checkpoint)),
        pre_ff_norm_config=norm,
        post_ff_norm_config=norm,
    )
    # transformers' Gemma3 attention never applies attn_logit_softcapping (Gemma3 replaced
    # soft-capping with QK-norm; the field survives from Gemma2's config). The reference
    # is what transformers computes, so it is not applied here either.

    def block(kind: str) -> Any:
        local = kind == "sliding_attention"
        attn = cfg.AttentionConfig(
            num_heads=heads,
            head_dim=head_dim,
            num_query_groups=int(c.get("num_key_value_heads") or heads),
            rotary_base=int(local_theta if local else global_theta),
            rotary_percentage=1.0,
            # q, k and v are fused as [all q; all k; all v] and split that way; the
            # default (interleaved per KV group) is only right with one KV head.
            qkv_transpose_before_split=True,
            qkv_fused_interleaved=False,
            qkv_use_bias=bool(c.get("attention_bias", False)),
            output_proj_use_bias=bool(c.get("attention_bias", False)),  # transformers biases o_proj too
            query_norm_config=norm,
            key_norm_config=norm,
            logit_softcap=None,
            sliding_window_size=window,
            attn_type=cfg.AttentionType.LOCAL_SLIDING if local else cfg.AttentionType.GLOBAL,
        )
        return cfg.TransformerBlockConfig(
            attn_config=attn,
            ff_config=ff,
            pre_attention_norm_config=norm,
            post_attention_norm_config=norm,
        )

    final_softcap = c.get("final_logit_softcapping")
    return cfg.ModelConfig(
        vocab_size=int(hf.require(c, "vocab_size", checkpoint)),
        num_layers=int(hf.require(c, "num_hidden_layers", checkpoint)),
        max_seq_len=max(settings.kv_cache_max_len, max(settings.prefill_lengths)),
        embedding_dim=hidden,
        embedding_scale=hidden**0.5,
        block_configs=[block(kind) for kind in layer_types(c, checkpoint)],
        final_norm_config=norm,
        lm_head_use_bias=False,
        final_logit_softcap=float(final_softcap) if final_softcap else None,
    )


def fold_query_scale(model: Any, config: Any) -> None:
    """Make attention scale queries by query_pre_attn_scalar**-0.5, as Gemma3 does.

    litert-torch's attention always scales by head_dim**-0.5. The query passes through
    a zero-centred RMSNorm (x * (1 + w)) before attention, so scaling (1 + w) by
    sqrt(head_dim / query_pre_attn_scalar) gives exactly Gemma3's scores.
    """
    import torch

    head_dim = model.config.block_config(0).attn_config.head_dim
    scalar = float(config.get("query_pre_attn_scalar") or head_dim)
    factor = math.sqrt(head_dim / scalar)
    if factor == 1.0:
        return
    with torch.no_grad():
        for block in model.transformer_blocks:
            weight = block.atten_func.query_norm.weight
            weight.copy_(factor * (1.0 + weight) - 1.0)


def decoder_class() -> type:
    """litert-torch's Gemma3 decoder, plus the final-logit soft-capping it leaves out."""
    import torch
    from litert_torch.generative.examples.gemma3 import decoder

    class Gemma3Decoder(decoder.Decoder):
        def _forward_with_embeds(self, *args: Any, **kwargs: Any) -> Any:
            out = super()._forward_with_embeds(*args, **kwargs)
            cap = self.config.final_logit_softcap
            if cap and "logits" in out:
                out["logits"] = torch.tanh(out["logits"] / cap) * cap
            return out

    return Gemma3Decoder


def build(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The Gemma3 decoder with the checkpoint's weights, ready for export."""
    from litert_torch.generative.examples.gemma3 import decoder

    config = model_config(checkpoint, settings)
    with skip_init():
        model = decoder_class()(config, mask_cache_size=0 if settings.mask_as_input else settings.kv_cache_max_len)
    model = load_weights(model, checkpoint, decoder.TENSOR_NAMES_SEP_QKV, tied_lm_head=True)
    fold_query_scale(model, checkpoint.config)
    return model
