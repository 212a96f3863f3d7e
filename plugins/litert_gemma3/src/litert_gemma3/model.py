"""Gemma3 on litert's Gemma-shaped classic decoder (`litert.classic.GemmaDecoder`, which has
everything Gemma3's text model does). What is Gemma3's own: the 4B-and-up checkpoints are
`Gemma3ForConditionalGeneration`, whose text model is converted alone — its config under
`text_config` (with transformers' Gemma3 defaults for what it leaves out), its weights
under `language_model.model.` (transformers 4) or `model.language_model.` (transformers 5),
the vision tower and projector declared unused."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from litert import hf
from litert.classic import GemmaDecoder
from litert.types import Checkpoint, ExportSettings

TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "attention_bias": False,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "tie_word_embeddings": True,
}
"""transformers' Gemma3TextConfig defaults: a `text_config` holds only what differs from them."""

VISION: dict[str, str] = {
    r"(model\.)?vision_tower\..*": "the vision tower: litert-gemma3 converts the text model",
    r"(model\.)?multi_modal_projector\..*": "the image projector: litert-gemma3 converts the text model",
}


class Gemma3(GemmaDecoder):
    unused: ClassVar[dict[str, str]] = {}

    def __init__(self, checkpoint: Checkpoint, settings: ExportSettings) -> None:
        text = checkpoint.config.get("text_config")
        if isinstance(text, dict):  # Gemma3ForConditionalGeneration: the text model alone
            names = hf.weight_names(checkpoint)
            prefix = (
                "language_model.model."
                if any(n.startswith("language_model.model.") for n in names)
                else ("model.language_model.")
            )
            self.tensor_names = {k: v.replace("model.", prefix, 1) if v else v for k, v in self.tensor_names.items()}
            self.unused = VISION
            checkpoint = dataclasses.replace(checkpoint, config={**TEXT_DEFAULTS, **text})
        super().__init__(checkpoint, settings)
