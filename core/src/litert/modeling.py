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
from litert.weights import load_state_dict

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

    def read(_: str) -> dict[str, Any]:
        # Stored dtype: load_state_dict into the fp32 model casts tensor by tensor.
        state = load_state_dict(checkpoint, dtype="float32" if CLASSIC else None)
        if tied_lm_head:
            state.pop("lm_head.weight", None)
        return state

    model_loader = loading_utils.ModelLoader(str(checkpoint.path), tensor_names, read)
    try:
        missing, _unexpected = model_loader.load(model, strict=not tied_lm_head)
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
