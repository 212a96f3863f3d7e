"""Helpers for family plugins' `build_model`: loading weights into a litert-torch model.

Upstream builders load with `strict=False` when embeddings are tied and discard the
list of missing tensors, and some swallow the loader's KeyError and return None. Here a
checkpoint whose tensors do not match the model is an error naming the tensor.
"""

from __future__ import annotations

from typing import Any

from litert.errors import LitertError
from litert.types import Checkpoint
from litert.weights import load_state_dict


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
        state = load_state_dict(checkpoint)
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
