"""The torch module -> a multi-signature .tflite file, through litert-torch.

One prefill signature per prefill length plus one decode signature, sharing an
external KV cache, quantized with the chosen recipe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from litert.errors import LitertError
from litert.types import ExportSettings


def check_block_quantization(module: Any, quantize: str) -> None:
    """Blockwise int4 needs every weight's input dimension to be a multiple of the block.

    Caught here, before minutes of export, rather than deep inside the quantizer.
    """
    if not quantize.startswith("dynamic_int4_block"):
        return
    import torch

    block = int(quantize.removeprefix("dynamic_int4_block"))
    odd = sorted(
        {m.in_features for m in module.modules() if isinstance(m, torch.nn.Linear) and m.in_features % block}
        | {m.embedding_dim for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.embedding_dim % block}
    )
    if odd:
        smaller = [r for r in ("dynamic_int4_block32",) if all(d % 32 == 0 for d in odd) and r != quantize]
        raise LitertError(
            f"{quantize} needs weight dimensions that are multiples of {block}; "
            f"this model has {', '.join(map(str, odd))}",
            f"use --quantize {smaller[0]}" if smaller else "use --quantize dynamic_int8",
        )


# litert-torch's levers for time and memory; LITERT_CLASSIC_EXPORT=1 turns them off (the
# benchmark's baseline).
LIGHTWEIGHT = os.environ.get("LITERT_CLASSIC_EXPORT", "") in ("", "0")


def export_tflite(module: Any, settings: ExportSettings, workdir: Path) -> Path:
    """Export `module` (a litert-torch generative model) into `workdir`; return the .tflite path."""
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils
    from litert_torch.generative.utilities import converter
    from litert_torch.generative.utilities import export_config as export_config_lib

    check_block_quantization(module, settings.quantize)
    config = getattr(module, "config", None)
    if config is None:
        raise LitertError(
            "the plugin's build_model returned a module without a `config` (litert-torch ModelConfig)",
            "the family plugin must build its model from litert-torch's generative layers",
        )
    export_config = export_config_lib.ExportConfig(
        mask_as_input=settings.mask_as_input,
        kvcache_layout=kv_utils.KV_LAYOUT_TRANSPOSED if settings.transpose_kv_cache else kv_utils.KV_LAYOUT_DEFAULT,
    )
    # What upstream's converter.convert_to_tflite does, plus the levers it does not pass:
    # lightweight_conversion and delete_in_memory_params (measured in docs/performance.md).
    from litert_torch._convert import interface as converter_utils

    torch._dynamo.config.cache_size_limit = 64
    edge = converter_utils.Converter()
    converter._add_signatures(
        edge,
        module,
        list(settings.prefill_lengths),
        settings.kv_cache_max_len,
        None,
        0,
        config,
        [None],
        export_config,
    )
    with torch.inference_mode(False):
        model = edge.convert(
            quant_config=converter.get_quant_recipe_from_flag(settings.quantize, config),
            lightweight_conversion=LIGHTWEIGHT,
            delete_in_memory_params=LIGHTWEIGHT,
        )
    path = workdir / "model.tflite"
    model.export(str(path))
    return path
