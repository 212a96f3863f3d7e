"""Helpers for family plugins' `build_model`: loading weights into a litert-torch model.

Upstream builders load with `strict=False` when embeddings are tied and discard the
list of missing tensors, and some swallow the loader's KeyError and return None. Here a
checkpoint whose tensors do not match the model is an error naming the tensor.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
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


def load_weights(
    model: Any,
    checkpoint: Checkpoint,
    tensor_names: Any,
    tied_lm_head: bool,
    unused: Mapping[str, str] | None = None,
) -> Any:
    r"""Load the checkpoint's safetensors into `model` (a litert-torch DecoderOnlyModel).

    Every tensor of the checkpoint must end up in the model: a tensor left over means
    the model computes something else than the checkpoint (a plugin that forgot q/k/v
    biases, an architecture variant it does not know), so the conversion stops naming
    it. Tensors a family deliberately does without are named in `unused`.

    :param model: the model built from a litert-torch ModelConfig.
    :param checkpoint: the claimed checkpoint.
    :param tensor_names: a `litert_torch...loader.ModelLoader.TensorNames`; with
        `tied_lm_head` its `lm_head` must be None.
    :param tied_lm_head: the LM head shares the embedding; an `lm_head.weight` in the
        file (present in some checkpoints, a copy of the embedding) is then not loaded,
        as transformers does not use it either.
    :param unused: tensors the model deliberately does not load: a regular expression
        (matched against the whole name) -> why, e.g.
        ``{r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq": "recomputed from config.json"}``.
    :return: the model, in eval mode.
    """
    from litert_torch.generative.utilities import loader as loading_utils

    where = checkpoint.source or checkpoint.path
    if CLASSIC:  # upstream's way, for the benchmark's baseline: an fp32 copy of every tensor at once
        state = load_state_dict(checkpoint, dtype="float32")
    else:
        state = LazyStateDict(checkpoint)
    if tied_lm_head:
        state.pop("lm_head.weight", None)
    patterns = [re.compile(p) for p in (unused or {})]
    for key in [k for k in state if any(p.fullmatch(k) for p in patterns)]:
        del state[key]
    model_loader = loading_utils.ModelLoader(str(checkpoint.path), tensor_names, lambda _: state)
    try:
        if CLASSIC:
            missing, _unexpected = model_loader.load(model, strict=not tied_lm_head)
        else:
            missing = _load_block_by_block(model, model_loader, state)
    except KeyError as exc:
        raise LitertError(f"{where} has no tensor {exc}, which the plugin's model needs", _MISMATCH_HINT) from exc
    except ValueError as exc:  # strict loading found tensors the model has no place for
        raise LitertError(f"{where}: {exc}", _MISMATCH_HINT) from exc
    except RuntimeError as exc:  # torch's load_state_dict: size mismatch
        detail = "; ".join(line.strip() for line in str(exc).splitlines() if "size mismatch" in line)
        raise LitertError(
            f"{where}: tensor shapes differ from the model's: {detail or exc}"[:600], _MISMATCH_HINT
        ) from exc
    if state:
        left = sorted(state)
        raise LitertError(
            f"{where} has {len(left)} tensor(s) the plugin's model does not use: {', '.join(left[:5])}"
            + (", …" if len(left) > 5 else ""),
            "converting without them would compute something else than the checkpoint; if the family "
            "does without them on purpose, the plugin names them in load_weights(unused=...) — otherwise "
            "report it to the plugin's maintainers",
        )
    missing = [k for k in missing if not (tied_lm_head and k == "lm_head.weight")]
    if missing:
        raise LitertError(f"{where} leaves model parameters unloaded: {', '.join(missing[:5])}", _MISMATCH_HINT)
    model.eval()
    return model


_MISMATCH_HINT = (
    "either the checkpoint is incomplete (re-download it) or the plugin builds another variant of the "
    "architecture than this checkpoint's (report it to the plugin's maintainers)"
)


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
