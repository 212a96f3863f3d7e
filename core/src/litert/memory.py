"""Pre-flight memory check: do not start a conversion the kernel will kill halfway.

The estimate is linear in the parameter count read from the safetensors headers (no
weights loaded), with the coefficients measured by the benchmark (docs/performance.md).
With streamed weights (the default, litert.streaming) the export holds no weights: its
processes hold the libraries and the traced graphs; the quantizer takes each weight from
the checkpoint when it reaches it (litert.quantizing), or, for fp16, from the filled float
model, keeping every cast weight until it writes them.
With the weights loaded (LITERT_STREAM_WEIGHTS=0, or a model that cannot stream) the
export holds the fp32 model: 4 bytes per parameter.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Any

from litert.errors import LitertError
from litert.types import Checkpoint, NativeExport
from litert.weights import read_header, safetensors_files

GB = 1000**3
BASE_BYTES = 2.2 * GB
"""One export process: the libraries loaded and the traced graphs of the reference
settings' seven signatures (measured 2.3 GB for Qwen3-8B's 36 layers)."""
BYTES_PER_PARAM = 4.5
"""Weights loaded: the fp32 model (4 bytes per parameter) and a margin. Measured peaks
(docs/performance.md): Qwen3-0.6B 4.5 GB (estimate 4.9), Gemma3-1B 5.8 (6.7), Qwen3-1.7B 9.0
(9.9), Qwen3-4B 18.4 (20.3)."""
QUANTIZE_BASE_BYTES = 2.0 * GB
QUANTIZE_BYTES_PER_PARAM = 1.4
"""Weights streamed, the float model filled and then quantized (fp16, or
LITERT_QUANTIZE_FROM_CHECKPOINT=0): the quantizer holds the quantized weights until it
writes them. Measured peaks: Qwen3-8B 12.1 and 12.6 GB in two runs (estimate 13.5);
Qwen3-0.6B 3.9 GB, the two export processes (estimate 4.4)."""
FROM_CHECKPOINT_BYTES_PER_PARAM = 0.8
"""Weights streamed and quantized from the checkpoint (litert.quantizing; the min-max
recipes, the default among them): one weight's values at a time, and what the quantizer
holds while it writes the model. Measured peak: Qwen3-8B 6.91 GB (estimate 8.6; 2026-12-04,
docs/performance.md), at the embedding and the LM head read together in bf16 (2.5 GB)."""


NATIVE_BASE_BYTES = 4.0 * GB
"""With `NativeExport.bytes_per_parameter` (12.5 by default). Built by litert-torch's
transformers-native exporter (litert.native; Gemma 4, LFM2, Qwen3.5): it
traces the whole transformers model in float32 and holds the traced graphs and the float
.tflite before quantizing, so nothing streams. Measured peaks (docs/performance.md), the
same as `litert-torch export_hf` run directly: E2B-shaped Gemma 4 at full width with 5 and 7
layers (0.93 and 1.14 B parameters, half of them embedding tables) 12.8 and 14.8 GB
(estimates 15.7 and 18.3); Qwen3-0.6B through export_hf, whose parameters are nearly all
layer weights, 11.3 GB (estimate 11.5). A full Gemma 4 E2B (about 5 B parameters with its
per-layer table) needs more than 50 GB this way. Qwen3.5 with its linear attention as plain
operations holds more: 13.5 GB for 0.50 B parameters at prefill 128 (19 bytes a parameter
over the 4 GB; litert-qwen3_5 declares it)."""

VERIFY_BASE_BYTES = 1.5 * GB
VERIFY_BYTES_PER_PARAM = 4.0
"""Verification holds one model at a time (litert.verify), and the largest is transformers'
float32 reference: 4 bytes per parameter, plus what its load casts and its forward on the
long prompt hold, counted as the checkpoint's file bytes again (`stored_bytes`), beside the
libraries and what the export left. Measured on the default command for Qwen3-0.6B (bf16,
2026-12-03, docs/performance.md): 4.63 GB (estimate 1.5 + 2.4 + 1.2 = 5.1 GB); the bundle's
stages stay lower (teacher-forced 3.15 GB, the runtime 1.9 GB, verifying on its own)."""


OFFLOADED_REFERENCE_BASE_BYTES = 1.0 * GB
OFFLOADED_BYTES_PER_LARGEST = 8
"""The reference read from the checkpoint module by module (`reference_in_memory` False):
besides the libraries, the largest module's float32 weights and their stored copy while
they are cast, its activations and the cache of the long prompt, counted as 1 GB and eight
bytes per parameter of the largest tensor. Measured on Qwen3-8B's default command
(docs/performance.md): 6.81 GB of anonymous memory at the peak (estimate 1.5 + 1.0 + 8 ×
0.62 = 7.5 GB); the checkpoint's mapped pages come on top in the resident set, as clean
file pages the kernel takes back."""


def reference_in_memory(checkpoint: Checkpoint) -> bool:
    """Whether verification holds transformers' float32 reference whole (the fast way), or
    has accelerate read each module's weights from the checkpoint's own safetensors files as
    it runs (the same logits to the bit; for models whose float32 copy does not fit: Qwen3-8B
    is 33 GB). LITERT_REFERENCE=memory or =disk decides instead of the memory available."""
    choice = os.environ.get("LITERT_REFERENCE", "").lower()
    if choice in ("memory", "disk"):
        return choice == "memory"
    try:
        files = safetensors_files(checkpoint)
    except LitertError:
        return True
    if any(path.suffix != ".safetensors" for path in files):
        return True  # accelerate would write a copy of pickled weights first: loaded whole
    whole = _reference_bytes(checkpoint, True)
    if whole <= _reference_bytes(checkpoint, False):
        return True  # a small model: whole is the smaller too
    available = available_bytes()
    return available is None or whole + VERIFY_BASE_BYTES <= available


def _reference_bytes(checkpoint: Checkpoint, in_memory: bool) -> int:
    """What verification's reference stage holds beside the libraries."""
    if in_memory:
        return int(VERIFY_BYTES_PER_PARAM * model_parameters(checkpoint) + stored_bytes(checkpoint))
    return int(OFFLOADED_REFERENCE_BASE_BYTES + OFFLOADED_BYTES_PER_LARGEST * largest_tensor(checkpoint))


def largest_tensor(checkpoint: Checkpoint) -> int:
    """The parameters of the checkpoint's largest tensor (an embedding or LM head, usually)."""
    return max(_tensor_sizes(checkpoint), default=0)


def _tensor_sizes(checkpoint: Checkpoint) -> Iterator[int]:
    """The parameters of each tensor the checkpoint's safetensors headers describe."""
    for path in safetensors_files(checkpoint):
        if path.suffix == ".safetensors":
            for key, info in read_header(path).items():
                if key != "__metadata__":
                    yield math.prod(int(dim) for dim in info.get("shape", []))


def stored_bytes(checkpoint: Checkpoint) -> int:
    """The checkpoint's weight files, in bytes."""
    return sum(path.stat().st_size for path in safetensors_files(checkpoint))


def parameter_count(checkpoint: Checkpoint) -> int:
    # pickles: their bytes, as 16-bit weights
    pickled = sum(path.stat().st_size // 2 for path in safetensors_files(checkpoint) if path.suffix != ".safetensors")
    return pickled + sum(_tensor_sizes(checkpoint))


def config_parameter_count(config: Any) -> int:
    """Parameters of the model config.json describes (a decoder-only transformer), 0 when unknown.

    The model built is what takes memory, whatever the files hold: a config that asks for
    100,000 layers over a small file must not pass the pre-flight check. A multimodal
    config.json is counted by its language model (`text_config`), with Gemma 4's per-layer
    embedding table (a row of `hidden_size_per_layer_input` per layer for every id).
    """
    from litert.hf import text_config

    config = text_config(config)
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        inter = int(config.get("intermediate_size") or 4 * hidden)
        per_layer = int(config.get("vocab_size_per_layer_input") or vocab) * int(
            config.get("hidden_size_per_layer_input") or 0
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    mlp = 3 * hidden * inter
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return max(0, layers * (attention + mlp + per_layer) + embeddings)


def model_parameters(checkpoint: Checkpoint) -> int:
    """The larger of what the files hold and what config.json describes."""
    return max(parameter_count(checkpoint), config_parameter_count(checkpoint.config))


def estimate_peak_bytes(
    checkpoint: Checkpoint, verify: bool = True, native: NativeExport | None = None, quantize: str = "dynamic_int8"
) -> int:
    """The conversion's peak: the export's, or verification's when it is larger. `native`:
    the family's manifest builds with the transformers-native exporter, holding
    `native.bytes_per_parameter`."""
    from litert import quantizing, streaming

    params = model_parameters(checkpoint)
    verifying = VERIFY_BASE_BYTES + _reference_bytes(checkpoint, reference_in_memory(checkpoint)) if verify else 0
    if native is not None:
        return int(max(NATIVE_BASE_BYTES + native.bytes_per_parameter * params, verifying))
    if not streaming.enabled():
        return int(max(BASE_BYTES + BYTES_PER_PARAM * params, verifying))
    from litert.lowering import PARALLEL_FROM, usable_cores

    processes = 2 if params >= PARALLEL_FROM and usable_cores() >= 2 else 1
    from_checkpoint = quantizing.enabled() and quantize not in ("none", "fp16")
    per_param = FROM_CHECKPOINT_BYTES_PER_PARAM if from_checkpoint else QUANTIZE_BYTES_PER_PARAM
    export = max(processes * BASE_BYTES, QUANTIZE_BASE_BYTES + per_param * params)
    return int(max(export, verifying))


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise LitertError(f"LITERT_MEMORY_LIMIT={text!r} is not a size", "use e.g. LITERT_MEMORY_LIMIT=8GB")
    scale = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}[m.group(2)]
    return int(float(m.group(1)) * scale)


def available_bytes() -> int | None:
    """Memory available to a new conversion: LITERT_MEMORY_LIMIT if set, else MemAvailable."""
    limit = os.environ.get("LITERT_MEMORY_LIMIT")
    if limit:
        return _parse_size(limit)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(
    checkpoint: Checkpoint, verify: bool = True, native: NativeExport | None = None, quantize: str = "dynamic_int8"
) -> tuple[int, int | None]:
    """Raise LitertError when the conversion would not fit; return (needed, available)."""
    needed = estimate_peak_bytes(checkpoint, verify, native, quantize)
    available = available_bytes()
    if available is not None and needed > available:
        limit = os.environ.get("LITERT_MEMORY_LIMIT")
        have = (
            f"your limit is {available / GB:.1f} GB (LITERT_MEMORY_LIMIT={limit})"
            if limit
            else (f"{available / GB:.1f} GB is available")
        )
        export = estimate_peak_bytes(checkpoint, False, native, quantize) if verify else needed
        hint = (
            f"verifying is what does not fit (transformers' float32 reference); `--no-verify` converts within "
            f"about {export / GB:.1f} GB, and `litert verify` checks the bundle later on a larger machine"
            if export <= available
            else "close other programs or convert on a machine with more memory"
        )
        raise LitertError(
            f"converting {checkpoint.source or checkpoint.path} needs about {needed / GB:.1f} GB of memory and {have}",
            f"{hint} (LITERT_MEMORY_LIMIT sets the budget; the estimate is explained in docs/performance.md)",
        )
    return needed, available


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the kernel (glibc's
    `malloc_trim`), between the stages of a conversion. What the export and the quantizer
    freed stays in the allocator's arenas otherwise, and the next stage (verification's
    reference model) is counted on top of it."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to ask
