"""Building the litert-torch Qwen3 model from config.json (imports torch).

The ModelConfig is derived from the checkpoint's own config.json, not from a table of
known sizes, so every Qwen3 size, fine-tune and tiny test checkpoint converts.
"""

from __future__ import annotations

import copy
from typing import Any

from litert import Checkpoint, ExportSettings, LitertError, hf
from litert.modeling import load_weights, skip_init


def model_config(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The litert-torch ModelConfig equivalent to the checkpoint's config.json."""
    import litert_torch.generative.layers.model_config as cfg

    c = checkpoint.config
    if c.get("use_sliding_window"):
        raise LitertError(
            "this Qwen3 checkpoint uses sliding-window attention, which litert-qwen3 does not convert yet",
            "use a checkpoint with use_sliding_window=false",
        )
    if hf.rope_type(c) != "default":
        raise LitertError(
            f"this Qwen3 checkpoint uses RoPE scaling {hf.rope_type(c)!r}, which litert-qwen3 does not convert yet",
            "use a checkpoint without rope_scaling",
        )
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise LitertError(f"unsupported Qwen3 activation {act!r}", "litert-qwen3 converts silu MLPs")
    hidden = int(hf.require(c, "hidden_size", checkpoint))
    heads = int(hf.require(c, "num_attention_heads", checkpoint))
    head_dim = int(c.get("head_dim") or hidden // heads)
    eps = float(c.get("rms_norm_eps", 1e-6))
    theta = hf.rope_theta(c, default=1_000_000.0)

    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=eps)
    attn = cfg.AttentionConfig(
        num_heads=heads,
        head_dim=head_dim,
        num_query_groups=int(c.get("num_key_value_heads") or heads),
        query_norm_config=norm,
        key_norm_config=norm,
        rotary_base=int(theta),
        rotary_percentage=1.0,
        qkv_use_bias=bool(c.get("attention_bias", False)),
        output_proj_use_bias=bool(c.get("attention_bias", False)),  # transformers biases o_proj too
        qkv_transpose_before_split=True,
        qkv_fused_interleaved=False,
    )
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(cfg.ActivationType.SILU),
        intermediate_size=int(hf.require(c, "intermediate_size", checkpoint)),
    )
    block = cfg.TransformerBlockConfig(
        attn_config=attn,
        ff_config=ff,
        pre_attention_norm_config=norm,
        post_attention_norm_config=norm,
    )
    return cfg.ModelConfig(
        vocab_size=int(hf.require(c, "vocab_size", checkpoint)),
        num_layers=int(hf.require(c, "num_hidden_layers", checkpoint)),
        max_seq_len=max(settings.kv_cache_max_len, max(settings.prefill_lengths)),
        embedding_dim=hidden,
        block_configs=block,
        final_norm_config=norm,
        lm_head_share_weight_with_embedding=bool(c.get("tie_word_embeddings", False)),
    )


def tensor_names(tied: bool) -> Any:
    from litert_torch.generative.examples.qwen import qwen3

    names = copy.copy(qwen3.TENSOR_NAMES)
    names.lm_head = None if tied else "lm_head"
    return names


def build(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The Qwen3 model with the checkpoint's weights, ready for export."""
    from litert_torch.generative.examples.qwen import qwen3

    config = model_config(checkpoint, settings)
    tied = config.lm_head_share_weight_with_embedding
    with skip_init():
        model = qwen3.Qwen3(config, mask_cache_size=0 if settings.mask_as_input else settings.kv_cache_max_len)
    return load_weights(model, checkpoint, tensor_names(tied), tied_lm_head=tied)
