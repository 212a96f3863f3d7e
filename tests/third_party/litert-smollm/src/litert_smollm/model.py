"""The litert-torch model built from config.json (imports torch)."""

from __future__ import annotations

import copy
from typing import Any

from litert import Checkpoint, ExportSettings, LitertError, hf
from litert.modeling import load_weights


def model_config(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    import litert_torch.generative.layers.model_config as cfg

    c = checkpoint.config
    if hf.rope_type(c) != "default":
        raise LitertError(f"RoPE scaling {hf.rope_type(c)!r} is not supported yet", "use a checkpoint without it")
    if c.get("hidden_act", "silu") != "silu":
        raise LitertError(f"unsupported activation {c.get('hidden_act')!r}", "this plugin converts SiLU MLPs")
    hidden = int(hf.require(c, "hidden_size", checkpoint))
    heads = int(hf.require(c, "num_attention_heads", checkpoint))
    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=float(c.get("rms_norm_eps", 1e-6)))
    attn = cfg.AttentionConfig(
        num_heads=heads,
        head_dim=int(c.get("head_dim") or hidden // heads),
        num_query_groups=int(c.get("num_key_value_heads") or heads),
        rotary_base=int(hf.rope_theta(c, default=10000.0)),
        rotary_percentage=1.0,
        qkv_use_bias=bool(c.get("attention_bias", False)),
        output_proj_use_bias=bool(c.get("attention_bias", False)),  # transformers biases o_proj too
    )
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(cfg.ActivationType.SILU),
        intermediate_size=int(hf.require(c, "intermediate_size", checkpoint)),
        use_bias=bool(c.get("mlp_bias", False)),
    )
    block = cfg.TransformerBlockConfig(
        attn_config=attn, ff_config=ff, pre_attention_norm_config=norm, post_attention_norm_config=norm
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


def build(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    from litert_torch.generative.utilities import model_builder

    config = model_config(checkpoint, settings)
    tied = config.lm_head_share_weight_with_embedding
    names = copy.copy(model_builder.TENSOR_NAMES)
    names.lm_head = None if tied else "lm_head"
    mask_cache = 0 if settings.mask_as_input else settings.kv_cache_max_len
    model = model_builder.DecoderOnlyModel(config, mask_cache_size=mask_cache)
    return load_weights(model, checkpoint, names, tied_lm_head=tied)
