"""The checkpoint's tensors under a litert-torch model's names, one block at a time.

litert-torch's `ModelLoader` maps checkpoint names to model names (fusing q/k/v and the
rest); its `load` maps every tensor into one dict first, so the whole checkpoint would be
in memory beside the model. Here the same mapping runs per block, over a lazy state dict
(tensors read when taken; large ones as shapes only while streaming), for loading
(`litert.modeling`) and for filling the exported model (`litert.streaming`) alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from litert.types import Checkpoint
from litert.weights import LazyStateDict, load_state_dict


def checkpoint_state(
    checkpoint: Checkpoint,
    tensor_names: Any,
    tied_lm_head: bool,
    unused: Mapping[str, str] | None,
    everything: bool = False,
    meta_from: int | None = None,
    split: Mapping[str, tuple[tuple[str, int], ...]] | None = None,
) -> tuple[Any, Any]:
    """The checkpoint's tensors (less those the model does without) and a litert-torch
    ModelLoader mapping them to the model's names.

    `everything` reads all of it as fp32 at once (the classic baseline); otherwise tensors
    are read when taken (`LazyStateDict`), large ones as shapes only with `meta_from`.
    """
    from litert_torch.generative.utilities import loader as loading_utils

    state: Any = (
        load_state_dict(checkpoint, dtype="float32") if everything else LazyStateDict(checkpoint, meta_from=meta_from)
    )
    if split:
        from litert.weights import SplitState

        state = SplitState(state, split)
    if tied_lm_head:
        state.pop("lm_head.weight", None)
    patterns = [re.compile(p) for p in (unused or {})]
    for key in [k for k in state if any(p.fullmatch(k) for p in patterns)]:
        del state[key]
    return state, loading_utils.ModelLoader(str(checkpoint.path), tensor_names, lambda _: state)


class _Capture:
    """What ModelLoader.load sees as the model when only the embedding, final norm and LM
    head are to be mapped: the same config with no transformer blocks; keeps the mapping."""

    def __init__(self, config: Any) -> None:
        self.config = _NoBlocksConfig(config)
        self.state: dict[str, Any] = {}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any:
        self.state = state
        return [], []


class _NoBlocksConfig:
    num_layers = 0

    def __init__(self, config: Any) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


def mapped_blocks(config: Any, loader: Any, state: Any) -> Iterator[dict[str, Any]]:
    """The checkpoint's tensors under the model's names (litert-torch ModelLoader's mapping:
    fused q/k/v and the rest), one group at a time: embedding, final norm and LM head, then
    each transformer block. Each group is read when it is reached.

    litert-torch's own `ModelLoader.load` maps every tensor into one dict first, so the
    whole checkpoint would be in memory beside the model. Tensors that come as shapes only
    (device "meta", for streamed weights) stay so through the mapping, even when fused
    with a tensor that was read.
    """
    yield mapped_group(config, loader, state, None)
    for i in range(config.num_layers):
        yield mapped_group(config, loader, state, i)


def mapped_group(config: Any, loader: Any, state: Any, block: int | None) -> dict[str, Any]:
    """One group of `mapped_blocks`: transformer block number `block`, or with None the
    embedding, final norm and LM head."""
    mapped: dict[str, Any] = {}
    with _MetaWins():
        if block is None:
            outer = _Capture(config)
            loader.load(outer, strict=False)
            return outer.state
        loader._map_norm(block, config, state, mapped)
        loader._map_feedforward(block, config, state, mapped)
        loader._map_attention(block, config, state, mapped)
    return mapped


_BLOCK = re.compile(r"(?:^|\.)transformer_blocks\.(\d+)\.")


def group_of(name: str) -> int | None:
    """The `mapped_group` a model parameter's value comes from: its transformer block's
    number, or None for the embedding, final norm and LM head."""
    found = _BLOCK.search(name)
    return int(found.group(1)) if found else None


def _MetaWins() -> Any:
    """A torch function mode in which an operation on a "meta" tensor and real ones gives a
    meta tensor (e.g. fusing a read q bias with... a weight known by shape only)."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_flatten, tree_unflatten

    class MetaWins(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            flat, spec = tree_flatten((args, kwargs or {}))
            if any(isinstance(t, torch.Tensor) and t.is_meta for t in flat):
                flat = [t.to("meta") if isinstance(t, torch.Tensor) else t for t in flat]
                args, kwargs = tree_unflatten(flat, spec)
            return func(*args, **(kwargs or {}))

    return MetaWins()
