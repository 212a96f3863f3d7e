"""Rebuild the tiny Gemma 4 checkpoint: python build_tiny.py

E2B-shaped, small: Gemma4ForConditionalGeneration (a one-layer vision tower, no audio),
per-layer embeddings, the last two layers sharing the KV of earlier ones, sliding and
full layers with their own head sizes and RoPE (proportional, partial on full layers),
final-logit soft-capping; ChatML.
"""

from pathlib import Path

from litert.tiny import CHATML, train_tiny

if __name__ == "__main__":
    train_tiny(
        Path(__file__).resolve().parent / "Gemma4-tiny",
        "Gemma4ForConditionalGeneration",
        CHATML,
        config={
            "num_hidden_layers": 4,
            "head_dim": 16,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            "per_layer_config": {"01": {"head_dim": 32}, "03": {"head_dim": 32}},
            "sliding_window": 16,
            "hidden_size_per_layer_input": 16,
            "num_kv_shared_layers": 2,
            "final_logit_softcapping": 30.0,
            "vision_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "head_dim": 16,
            },
            "audio_config": None,
        },
    )
