"""Rebuild the tiny LFM2 checkpoint (convolution, attention, convolution; ChatML): python build_tiny.py"""

from pathlib import Path

from litert.tiny import CHATML, train_tiny

if __name__ == "__main__":
    train_tiny(
        Path(__file__).resolve().parent / "Lfm2-tiny",
        "Lfm2ForCausalLM",
        CHATML,
        config={
            "num_hidden_layers": 3,
            "layer_types": ["conv", "full_attention", "conv"],
            "block_auto_adjust_ff_dim": False,
        },
    )
