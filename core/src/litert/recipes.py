"""litert's own quantization recipes, composed as ai-edge-quantizer recipes.

litert-torch names most recipes itself (`dynamic_int8`, `dynamic_int4_block32`, …); a mixed
recipe cannot be taken from it for the models litert builds, because its per-scope rules
find the MLP by the op-name prefix `transformer_block/…feed_forward` while litert's blocks
are named `TransformerBlock_<i>` — upstream's mixed recipes would quantize everything with
the default rule. So litert writes the rules itself, by the names of the ops (for ops with
one output, the output tensor's name: the module path, or the signature's output).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FEED_FORWARD = r".*litert_torch\.generative\.layers\.feed_forward.*"
"""The MLP's ops, by the module path in their names (litert-torch's own feed-forward scope,
`transformer_block/...feed_forward`, matches no op of a model litert builds: its blocks are
named `TransformerBlock_<i>`)."""
LM_HEAD = r".*logits.*"
"""The LM head: the fully connected op whose output is the logits (`decode_logits_output`)."""
EMBEDDING = r".*tok_embedding.*"
"""The token embedding's lookup (`…Embedding_tok_embedding`)."""


def _int4_mlp(rm: Any, qtyping: Any, tied: bool) -> None:
    # int8 per channel everywhere, then int4 blocks for the MLP (the later rule wins)
    every, blocks = qtyping.TFLOperationName.ALL_SUPPORTED, qtyping.QuantGranularity.BLOCKWISE_32
    rm.add_dynamic_config(".*", every, 8)
    rm.add_dynamic_config(FEED_FORWARD, every, 4, blocks)


def _int4_int8_head(rm: Any, qtyping: Any, tied: bool) -> None:
    # int4 blocks everywhere, then int8 per channel for the LM head — and for the embedding
    # when the head is the embedding's weight: one weight, one rule (two would store it twice,
    # int4 and int8; ai-edge-quantizer 0.10.0 also fails naming that copy)
    every, blocks = qtyping.TFLOperationName.ALL_SUPPORTED, qtyping.QuantGranularity.BLOCKWISE_32
    rm.add_dynamic_config(".*", every, 4, blocks)
    rm.add_dynamic_config(f"{LM_HEAD}|{EMBEDDING}" if tied else LM_HEAD, every, 8)


_RECIPES: dict[str, Callable[[Any, Any, bool], None]] = {
    "dynamic_int4_mlp": _int4_mlp,
    "dynamic_int4_int8_head": _int4_int8_head,
}
OWN_RECIPES = tuple(_RECIPES)
"""The recipes litert composes itself (types.QUANTIZATION_RECIPES); the others are litert-torch's."""


def litert_recipe(quantize: str, tied: bool = False) -> Any:
    """The ai-edge-quantizer recipe of one of litert's own recipes (OWN_RECIPES), or None;
    `tied`: the model's LM head is its embedding's weight."""
    if quantize not in _RECIPES:
        return None
    from ai_edge_quantizer import qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    _RECIPES[quantize](rm, qtyping, tied)
    return rm.get_quantization_recipe()


def tied(config: Any) -> bool:
    """Whether a litert-torch ModelConfig's LM head is its embedding's weight."""
    return bool(getattr(config, "lm_head_share_weight_with_embedding", False))
