"""Rebuild the tiny Qwen2 checkpoint (biased q/k/v, ChatML): python build_tiny.py"""

from pathlib import Path

from litert.tiny import CHATML, train_tiny

if __name__ == "__main__":
    train_tiny(Path(__file__).resolve().parent / "Qwen2-tiny", "Qwen2ForCausalLM", CHATML)
