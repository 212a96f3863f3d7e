"""Rebuild the tiny Qwen3.5 checkpoint (linear, linear, full attention; ChatML): python build_tiny.py"""

from pathlib import Path

from litert.tiny import CHATML, train_tiny

if __name__ == "__main__":
    train_tiny(
        Path(__file__).resolve().parent / "Qwen3_5-tiny",
        "Qwen3_5ForCausalLM",
        CHATML,
        config={
            "num_hidden_layers": 3,
            "layer_types": ["linear_attention", "linear_attention", "full_attention"],
            "head_dim": 16,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "linear_key_head_dim": 16,
            "linear_value_head_dim": 16,
        },
    )
