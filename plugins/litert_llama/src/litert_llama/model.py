"""The litert-torch Llama decoder built from config.json (imports torch).

Sizes, heads, KV heads, head_dim, biases, tying and RoPE (plain, or Llama 3.1/3.2's
`llama3` frequency scaling) all come from the checkpoint's config.json, in either
vintage (`rope_parameters`, or `rope_theta` + `rope_scaling`).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

from litert import Checkpoint, ExportSettings, LitertError, hf
from litert.modeling import load_weights, skip_init

SUPPORTED_ROPE = ("default", "llama3")


def rope_parameters(config: Any) -> dict[str, Any]:
    """The RoPE parameters from either config.json vintage (an empty dict when there are none)."""
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        return dict(params)
    scaling = config.get("rope_scaling")
    return dict(scaling) if isinstance(scaling, dict) else {}


def llama3_rope(
    input_pos: Any,
    n_elem: int,
    base: float,
    *,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: int,
) -> tuple[Any, Any]:
    """cos/sin of Llama 3.1's scaled RoPE, computed as transformers' `_compute_llama3_parameters`.

    litert-torch's own llama3 cache hard-codes the original context (8192) and an integer
    base; here every value comes from config.json.
    """
    import torch

    inv_freq = 1.0 / (base ** (torch.arange(0, n_elem, 2, dtype=torch.int64).float() / n_elem))
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_position_embeddings / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq = torch.where(medium, smoothed, scaled)
    angles = torch.outer(input_pos.float(), inv_freq)
    return torch.cos(angles), torch.sin(angles)


def build_rope(config: Any, checkpoint: Checkpoint) -> Any:
    """The `build_rope` callable of the ModelConfig, or None for plain RoPE."""
    rope = rope_parameters(config)
    kind = str(rope.get("rope_type") or rope.get("type") or "default")
    if kind not in SUPPORTED_ROPE:
        raise LitertError(
            f"this Llama checkpoint uses RoPE scaling {kind!r}, which litert-llama does not convert",
            f"litert-llama converts RoPE {' and '.join(SUPPORTED_ROPE)}",
        )
    if kind == "default":
        return None
    try:
        return functools.partial(
            llama3_rope,
            factor=float(rope["factor"]),
            low_freq_factor=float(rope["low_freq_factor"]),
            high_freq_factor=float(rope["high_freq_factor"]),
            original_max_position_embeddings=int(
                rope.get("original_max_position_embeddings")
                or hf.require(config, "max_position_embeddings", checkpoint)
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LitertError(
            f"config.json of {checkpoint.source or checkpoint.path} has incomplete llama3 RoPE parameters ({exc})",
            "re-download the checkpoint",
        ) from exc


def model_config(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The litert-torch ModelConfig equivalent to the checkpoint's config.json."""
    import litert_torch.generative.layers.model_config as cfg

    c = checkpoint.config
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise LitertError(f"unsupported Llama activation {act!r}", "litert-llama converts SiLU MLPs")
    if float(c.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise LitertError("partial rotary embeddings are not supported", "litert-llama converts full RoPE")
    hidden = int(hf.require(c, "hidden_size", checkpoint))
    heads = int(hf.require(c, "num_attention_heads", checkpoint))
    theta = hf.rope_theta(c, default=10000.0)
    rope = build_rope(c, checkpoint)
    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=float(c.get("rms_norm_eps", 1e-6)))
    attn = cfg.AttentionConfig(
        num_heads=heads,
        head_dim=int(c.get("head_dim") or hidden // heads),
        num_query_groups=int(c.get("num_key_value_heads") or heads),
        rotary_base=theta,
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
    extra = {"build_rope": rope} if rope is not None else {}
    return cfg.ModelConfig(
        vocab_size=int(hf.require(c, "vocab_size", checkpoint)),
        num_layers=int(hf.require(c, "num_hidden_layers", checkpoint)),
        max_seq_len=max(settings.kv_cache_max_len, max(settings.prefill_lengths)),
        embedding_dim=hidden,
        block_configs=block,
        final_norm_config=norm,
        lm_head_share_weight_with_embedding=bool(c.get("tie_word_embeddings", False)),
        **extra,
    )


def tensor_names(tied: bool) -> Any:
    from litert_torch.generative.utilities import model_builder

    names = copy.copy(model_builder.TENSOR_NAMES)
    names.lm_head = None if tied else "lm_head"
    return names


def build(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    """The Llama decoder with the checkpoint's weights, ready for export."""
    from litert_torch.generative.utilities import model_builder

    config = model_config(checkpoint, settings)
    tied = config.lm_head_share_weight_with_embedding
    with skip_init():
        model = model_builder.DecoderOnlyModel(
            config, mask_cache_size=0 if settings.mask_as_input else settings.kv_cache_max_len
        )
    return load_weights(model, checkpoint, tensor_names(tied), tied_lm_head=tied)
