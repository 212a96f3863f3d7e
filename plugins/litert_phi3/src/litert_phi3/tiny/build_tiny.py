"""Rebuild the tiny Phi-3 checkpoint, shaped like Phi-4-mini (partial rotary 0.75, LongRoPE,
tied embeddings, a window on every layer): python build_tiny.py"""

from pathlib import Path

from litert.tiny import PHI, train_tiny

HEAD_DIM = 16  # hidden 64 / 4 heads
ROTARY_HALF = int(HEAD_DIM * 0.75) // 2

if __name__ == "__main__":
    train_tiny(
        Path(__file__).resolve().parent / "Phi3-tiny",
        "Phi3ForCausalLM",
        PHI,
        config={
            "partial_rotary_factor": 0.75,
            "max_position_embeddings": 8192,
            "original_max_position_embeddings": 2048,
            "rope_scaling": {
                "type": "longrope",
                "short_factor": [1.0 + 0.1 * i for i in range(ROTARY_HALF)],
                "long_factor": [1.5 + 0.5 * i for i in range(ROTARY_HALF)],
            },
            "sliding_window": 512,
        },
    )
