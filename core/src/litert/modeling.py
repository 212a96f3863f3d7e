"""Helpers for family plugins' `build_model`: loading weights into a litert-torch model.

Upstream builders load with `strict=False` when embeddings are tied and discard the
list of missing tensors, and some swallow the loader's KeyError and return None. Here a
checkpoint whose tensors do not match the model is an error naming the tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from litert.baseline import CLASSIC
from litert.errors import LitertError
from litert.types import Checkpoint
from litert.weights import LazyStateDict, load_state_dict

_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Build a model without random initialisation: its weights come from the checkpoint.

    Initialising a full-size model only to overwrite it costs seconds (8 s of 13 s for
    Qwen3-0.6B) and touches every page of the parameters before loading does. Inside
    this context torch.nn.init's functions do nothing, so parameters are allocated but
    left as they are until `load_weights` fills them; tensors created with explicit
    values (torch.ones for a norm's scale) are unaffected. Use it around the
    constructor only: `load_weights` then refuses a checkpoint that leaves any
    parameter unloaded, so no uninitialised weight reaches the converter.

    Example::

        with skip_init():
            model = qwen3.Qwen3(config, mask_cache_size=0)
        return load_weights(model, checkpoint, names, tied_lm_head=True)
    """
    if CLASSIC:
        yield
        return
    import torch

    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    try:
        for name in saved:
            setattr(torch.nn.init, name, keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def load_weights(model: Any, checkpoint: Checkpoint, tensor_names: Any, tied_lm_head: bool) -> Any:
    """Load the checkpoint's safetensors into `model` (a litert-torch DecoderOnlyModel).

    :param model: the model built from a litert-torch ModelConfig.
    :param checkpoint: the claimed checkpoint.
    :param tensor_names: a `litert_torch...loader.ModelLoader.TensorNames`; with
        `tied_lm_head` its `lm_head` must be None.
    :param tied_lm_head: the LM head shares the embedding; an `lm_head.weight` in the
        file (present in some checkpoints) is then ignored.
    :return: the model, in eval mode.
    """
    from litert_torch.generative.utilities import loader as loading_utils

    if CLASSIC:  # upstream's way, for the benchmark's baseline: an fp32 copy of every tensor at once
        state = load_state_dict(checkpoint, dtype="float32")
    else:
        state = LazyStateDict(checkpoint)
    if tied_lm_head:
        state.pop("lm_head.weight", None)
    model_loader = loading_utils.ModelLoader(str(checkpoint.path), tensor_names, lambda _: state)
    try:
        if CLASSIC:
            missing, _unexpected = model_loader.load(model, strict=not tied_lm_head)
        else:
            missing = _load_block_by_block(model, model_loader, state)
            if not tied_lm_head and state:
                raise ValueError(f"Failed to map all tensor. Remaining tensor are: {list(state)[:5]}")
    except KeyError as exc:
        raise LitertError(
            f"{checkpoint.source or checkpoint.path} has no tensor {exc}",
            "the weights do not match config.json; re-download the checkpoint",
        ) from exc
    except ValueError as exc:  # strict loading found tensors the model has no place for
        raise LitertError(
            f"{checkpoint.source or checkpoint.path}: {exc}", "the weights do not match config.json"
        ) from exc
    missing = [k for k in missing if not (tied_lm_head and k == "lm_head.weight")]
    if missing:
        raise LitertError(
            f"{checkpoint.source or checkpoint.path} leaves model parameters unloaded: {', '.join(missing[:5])}",
            "the weights do not match config.json; re-download the checkpoint",
        )
    model.eval()
    return model


class _WithoutBlocks:
    """What ModelLoader.load sees of the model when only the embedding, final norm and LM head
    are to be loaded: the same config with no transformer blocks."""

    def __init__(self, model: Any, loaded: set[str]) -> None:
        self._model, self._loaded = model, loaded
        self.config = _NoBlocksConfig(model.config)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any:
        self._loaded.update(state)
        return self._model.load_state_dict(state, strict=False)


class _NoBlocksConfig:
    num_layers = 0

    def __init__(self, config: Any) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


def _load_block_by_block(model: Any, loader: Any, state: Any) -> list[str]:
    """litert-torch's ModelLoader.load, one transformer block at a time.

    Its own `load` maps every tensor into one dict before copying, so the whole
    checkpoint is in memory beside the fp32 model; here each block's tensors are read,
    copied (and cast) into the model, and freed before the next. Returns the model's
    parameters left unloaded.
    """
    loaded: set[str] = set()
    loader.load(_WithoutBlocks(model, loaded), strict=False)  # embedding, final norm, LM head
    config = model.config
    for i in range(config.num_layers):
        block: dict[str, Any] = {}
        loader._map_norm(i, config, state, block)
        loader._map_feedforward(i, config, state, block)
        loader._map_attention(i, config, state, block)
        unexpected = model.load_state_dict(block, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"the model has no parameter for {', '.join(unexpected[:5])}")
        loaded.update(block)
    return [k for k in model.state_dict() if k not in loaded]
