"""Helpers for family plugins' `build_model`: loading weights into a litert-torch model.

Upstream builders load with `strict=False` when embeddings are tied and discard the
list of missing tensors, and some swallow the loader's KeyError and return None. Here a
checkpoint whose tensors do not match the model is an error naming the tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from litert import streaming
from litert.baseline import CLASSIC
from litert.errors import LitertError
from litert.mapping import checkpoint_state, mapped_blocks
from litert.types import Checkpoint

__all__ = ["load_weights", "skip_init"]

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
    split: Mapping[str, tuple[tuple[str, int], ...]] | None = None,
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
    :param split: fused checkpoint tensors to read as their parts: a name pattern with "{}"
        for the layer -> ((part name pattern, rows), ...), split along the first dimension,
        e.g. ``{"model.layers.{}.mlp.gate_up_proj": (("model.layers.{}.mlp.gate_proj", 8192),
        ("model.layers.{}.mlp.up_proj", 8192))}`` (`litert.classic.ClassicDecoder.splits`).
    :return: the model, in eval mode.
    """
    where = checkpoint.source or checkpoint.path
    try:
        if CLASSIC:  # upstream's way, for the benchmark's baseline: an fp32 copy of every tensor at once
            state, model_loader = checkpoint_state(
                checkpoint, tensor_names, tied_lm_head, unused, everything=True, split=split
            )
            missing, _unexpected = model_loader.load(model, strict=not tied_lm_head)
        elif streaming.active() and _streamable(model):
            try:
                streamed = streaming.StreamedWeights(
                    checkpoint, tensor_names, tied_lm_head, dict(unused or {}), model.config, dict(split or {})
                )
                state, model_loader = checkpoint_state(
                    checkpoint, tensor_names, tied_lm_head, unused, meta_from=streaming.threshold(), split=split
                )
                missing = _load_block_by_block(model, model_loader, state, streamed)
                if streamed.names:  # else every weight was small enough to be read
                    setattr(model, streaming.ATTRIBUTE, streamed)
            except streaming.NotStreamable:  # e.g. a plugin's model holding other dtypes: load it whole
                state, model_loader = checkpoint_state(checkpoint, tensor_names, tied_lm_head, unused, split=split)
                missing = _load_block_by_block(model, model_loader, state)
        else:
            state, model_loader = checkpoint_state(checkpoint, tensor_names, tied_lm_head, unused, split=split)
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


def _streamable(model: Any) -> bool:
    """Streaming needs the model in float32, as litert-torch builds it."""
    import torch

    return all(p.dtype == torch.float32 for p in model.parameters())


def _load_block_by_block(model: Any, loader: Any, state: Any, streamed: Any = None) -> list[str]:
    """Load the checkpoint into `model` one group of tensors at a time (`mapped_blocks`):
    each group's tensors are read, copied (and cast) into the model, and freed before the
    next. With `streamed` (a `litert.streaming.StreamedWeights`), tensors that come as
    shapes only are checked against the model and marked, not loaded. Returns the model's
    parameters left unloaded.
    """
    loaded: set[str] = set()
    params = dict(model.named_parameters())
    for block in mapped_blocks(model.config, loader, state):
        real = {}
        for name, tensor in block.items():
            if not tensor.is_meta:
                real[name] = tensor
                continue
            param = params.get(name)
            if streamed is None or param is None:
                raise streaming.NotStreamable(f"{name} is known by shape only")
            if tuple(param.shape) != tuple(tensor.shape):
                raise RuntimeError(
                    f"size mismatch for {name}: copying a param with shape {tuple(tensor.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(param.shape)}."
                )
            streamed.mark(name, param)
        unexpected = model.load_state_dict(real, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"the model has no parameter for {', '.join(unexpected[:5])}")
        loaded.update(block)
    return [k for k in model.state_dict() if k not in loaded]
