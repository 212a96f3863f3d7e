"""litert's own quantization recipes, composed as ai-edge-quantizer recipes.

litert-torch names most recipes itself (`dynamic_int8`, `dynamic_int4_block32`, …); a mixed
recipe cannot be taken from it for the models litert builds, because its per-scope rules
find the MLP by the op-name prefix `transformer_block/…feed_forward` while litert's blocks
are named `TransformerBlock_<i>` — upstream's mixed recipes would quantize everything with
the default rule. So litert writes the rules itself, by the module path in the op names.
"""

from __future__ import annotations

from typing import Any

OWN_RECIPES = ("dynamic_int4_mlp",)
"""The recipes litert composes itself (types.QUANTIZATION_RECIPES); the others are litert-torch's."""
FEED_FORWARD = r".*litert_torch\.generative\.layers\.feed_forward.*"
"""The MLP's ops, by the module path in their names (litert-torch's own feed-forward scope,
`transformer_block/...feed_forward`, matches no op of a model litert builds: its blocks are
named `TransformerBlock_<i>`)."""


def litert_recipe(quantize: str) -> Any:
    """The ai-edge-quantizer recipe of one of litert's own recipes (OWN_RECIPES), or None."""
    if quantize not in OWN_RECIPES:
        return None
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    def config(bits: int, granularity: Any) -> Any:
        return qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=bits, symmetric=True, granularity=granularity, dtype=qtyping.TensorDataType.INT
            ),
            compute_precision=qtyping.ComputePrecision.INTEGER,
            explicit_dequantize=False,
        )

    rm = recipe_manager.RecipeManager()
    minmax = algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT
    every = qtyping.TFLOperationName.ALL_SUPPORTED
    # int8 per channel everywhere, then int4 blocks for the MLP (the later rule wins)
    rm.add_quantization_config(".*", every, config(8, qtyping.QuantGranularity.CHANNELWISE), minmax)
    rm.add_quantization_config(FEED_FORWARD, every, config(4, qtyping.QuantGranularity.BLOCKWISE_32), minmax)
    return rm.get_quantization_recipe()
