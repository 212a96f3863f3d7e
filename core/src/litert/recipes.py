"""litert's own quantization recipes, composed as ai-edge-quantizer recipes.

litert-torch names most recipes itself (`dynamic_int8`, `dynamic_int4_block32`, …); a mixed
recipe cannot be taken from it for the models litert builds, because its per-scope rules
find the MLP by the op-name prefix `transformer_block/…feed_forward` while litert's blocks
are named `TransformerBlock_<i>` — upstream's mixed recipes would quantize everything with
the default rule. So litert writes the rules itself, by the module path in the op names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FEED_FORWARD = r".*litert_torch\.generative\.layers\.feed_forward.*"
"""The MLP's ops, by the module path in their names (litert-torch's own feed-forward scope,
`transformer_block/...feed_forward`, matches no op of a model litert builds: its blocks are
named `TransformerBlock_<i>`)."""
BLOCKS = r".*TransformerBlock_.*"
"""Every op inside a transformer block: attention and MLP, not the embedding or the LM head."""


def _int4_mlp(rm: Any, aeq: Any) -> None:
    # int8 per channel everywhere, then int4 blocks for the MLP (the later rule wins)
    rm.add_dynamic_config(".*", aeq.every, 8)
    rm.add_dynamic_config(FEED_FORWARD, aeq.every, 4, aeq.qtyping.QuantGranularity.BLOCKWISE_32)


def _int4_hr(rm: Any, aeq: Any) -> None:
    rm.add_dynamic_config(".*", aeq.every, 4, algorithm_key=aeq.hadamard)


def _int4_hr_blocks(rm: Any, aeq: Any) -> None:
    rm.add_dynamic_config(".*", aeq.every, 8)
    rm.add_dynamic_config(BLOCKS, aeq.every, 4, algorithm_key=aeq.hadamard)


_RECIPES: dict[str, Callable[[Any, Any], None]] = {
    "dynamic_int4_mlp": _int4_mlp,
    "dynamic_int4_hr": _int4_hr,
    "dynamic_int4_hr_blocks": _int4_hr_blocks,
}
OWN_RECIPES = tuple(_RECIPES)
"""The recipes litert composes itself (types.QUANTIZATION_RECIPES); the others are litert-torch's."""


def litert_recipe(quantize: str) -> Any:
    """The ai-edge-quantizer recipe of one of litert's own recipes (OWN_RECIPES), or None."""
    if quantize not in _RECIPES:
        return None
    import types

    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    aeq = types.SimpleNamespace(
        qtyping=qtyping,
        every=qtyping.TFLOperationName.ALL_SUPPORTED,
        hadamard=algorithm_manager.AlgorithmName.DECOMPOSED_HADAMARD_ROTATION,
    )
    rm = recipe_manager.RecipeManager()
    _RECIPES[quantize](rm, aeq)
    return rm.get_quantization_recipe()
