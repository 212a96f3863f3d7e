"""The torch module -> a multi-signature .tflite file, through litert-torch.

One prefill signature per prefill length plus one decode signature, sharing an
external KV cache, quantized with the chosen recipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from litert import streaming
from litert.baseline import CLASSIC
from litert.errors import LitertError
from litert.flatbuffer import read_head
from litert.preflight import INT4_BLOCKS, check_block_dims
from litert.recipes import OWN_RECIPES, litert_recipe, tied
from litert.types import ExportSettings


def load_toolchain() -> None:
    """Import the whole conversion toolchain now: litert-torch, and the TensorFlow it loads for
    lowering and quantizing (~2,500 modules, 3 s). The caller holds SIGINT/SIGTERM meanwhile:
    a Python exception raised while TensorFlow's native parts start ends the process with
    SIGABRT (seen under load: a Ctrl-C in the first second of the export gave -6, not 130)."""
    import ai_edge_quantizer.quantizer  # noqa: F401
    import litert_torch  # noqa: F401
    from litert_torch._convert import core, interface, litert_converter  # noqa: F401
    from litert_torch.generative.utilities import converter  # noqa: F401
    from litert_torch.quantize import quant_config, translate_recipe  # noqa: F401


def check_block_quantization(module: Any, quantize: str) -> None:
    """Blockwise int4 needs every weight's input dimension to be a multiple of the block.

    Caught here, before minutes of export, rather than deep inside the quantizer.
    """
    if quantize not in INT4_BLOCKS:
        return
    import torch

    check_block_dims(
        quantize,
        {m.in_features for m in module.modules() if isinstance(m, torch.nn.Linear)}
        | {m.embedding_dim for m in module.modules() if isinstance(m, torch.nn.Embedding)},
    )


@dataclasses.dataclass
class Lowered:
    """The exported model on disk, and the quantization still to apply to it."""

    path: Path
    recipe: Any = None
    """An ai-edge-quantizer recipe, or None when `path` is already the final model."""
    streamed: Any = None
    """The `StreamedWeights` whose markers are still in `path`, to be quantized from the
    checkpoint (litert.quantizing); None when the float model holds its weights."""


@dataclasses.dataclass(frozen=True)
class Rebuild:
    """How a second process builds the same model: the plugin's build_model with this claim."""

    plugin: str
    claim: Any


PARALLEL_FROM = 100_000_000
"""Parameters from which a second export process pays for its start (about 6 s to import
the toolchain and build the streamed model): tracing and lowering one signature of a
tiny model takes 2 s, of Qwen3-0.6B 14 s."""


def usable_cores() -> int:
    """The cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def export_processes(module: Any, quantize: str) -> int:
    """Processes that trace and lower signatures at once: 2 for a model of `PARALLEL_FROM`
    parameters or more on a machine with two or more cores, when TMPDIR has room for both
    halves' float models (litert.disk), else 1. LITERT_EXPORT_PROCESSES=1 or 2 decides
    instead of the size (2 still needs two cores and the room)."""
    import os

    from litert.disk import room_for

    cores = usable_cores()
    params = sum(p.numel() for p in module.parameters())
    wanted = os.environ.get("LITERT_EXPORT_PROCESSES", "")
    two = wanted == "2" or (wanted != "1" and params >= PARALLEL_FROM)
    return 2 if two and cores >= 2 and room_for(params, quantize, 2) else 1


def planned_steps(settings: ExportSettings, streamed: bool, parallel: bool) -> int:
    """How many times `lower` and `quantize` call `step` (for the progress display): with
    streamed weights, "writing the weights" is a step of its own unless the recipe takes
    them from the checkpoint while quantizing (every recipe but none and fp16, unless
    LITERT_QUANTIZE_FROM_CHECKPOINT=0)."""
    from litert import quantizing

    signatures = len(settings.prefill_lengths) + 1
    traced_here = (signatures + 1) // 2 if parallel else signatures
    filled = streamed and (settings.quantize in ("none", "fp16") or not quantizing.enabled())
    return traced_here + 1 + parallel + filled + (settings.quantize != "none")


def lower(
    module: Any,
    settings: ExportSettings,
    workdir: Path,
    step: Callable[[str], None] | None = None,
    rebuild: Rebuild | None = None,
) -> Lowered:
    """Export `module` (a litert-torch generative model) to a float .tflite in `workdir`.

    The steps are upstream's `convert_to_tflite`, with what measured better on
    full-size models (docs/performance.md): no pre-convert decomposition pass (the
    lowering decomposes again anyway, as litert-torch's V2 path also relies on);
    weights as shared resource constants (`lightweight_conversion`) without the
    runtime constant-folding round trip (these graphs have nothing to fold); and the
    float model streamed to a file rather than into a Python bytes object. The
    result is byte-identical to litert-torch's own `Converter.convert(
    lightweight_conversion=True)` (tests/test_lowering.py). Quantization is left to
    `quantize`, so the caller can free the torch model first.

    `step(label)` is called as each step starts (one per signature, then the flatbuffer,
    then writing streamed weights), so the caller can show where a minutes-long export is.

    A module built with streamed weights (litert.streaming) is lowered with markers in
    place of its large weights, which are then written into the float model from the
    checkpoint; `NotStreamable` means it must be built again with its weights loaded.
    With `rebuild` too, when `export_processes` says two, a second process builds the same
    streamed model and lowers the second half of the signatures while this one lowers the
    first; the two float models are merged (litert.merging) before the weights are written.
    """
    import torch

    check_block_quantization(module, settings.quantize)
    streamed = getattr(module, streaming.ATTRIBUTE, None)
    if streamed is not None and (changed := streamed.changed(module)):
        raise streaming.NotStreamable(f"the plugin changed {changed[0]} after loading it")
    edge, quant_config, by_quantizer = _signatures(module, settings)
    own_recipe = litert_recipe(settings.quantize, tied(getattr(module, "config", None)))
    path = workdir / "model.tflite"
    if CLASSIC and own_recipe is not None:
        raise LitertError(f"{settings.quantize} is litert's own recipe: the upstream baseline has no such recipe")
    if CLASSIC or not by_quantizer:
        if streamed is not None:
            raise streaming.NotStreamable(f"{settings.quantize} quantizes while lowering, from the weights' values")
        from litert.disk import BYTES_PER_PARAM, ensure_room

        with torch.inference_mode(False):
            model = edge.convert(quant_config=quant_config)
        # the writer ends the process on a full disk: the weights at the recipe's size fit first
        ensure_room(path, int(_weight_bytes(edge._signatures) * BYTES_PER_PARAM.get(settings.quantize, 4.0) / 4))
        model.export(str(path))
        return Lowered(path)

    signatures = edge._signatures
    step = step or (lambda label: None)
    float_path = path if quant_config is None and own_recipe is None else workdir / "model.float.tflite"
    parallel = streamed is not None and rebuild is not None and len(signatures) > 1
    if parallel and export_processes(module, settings.quantize) > 1:
        half = (len(signatures) + 1) // 2
        names = [sig.name for sig in signatures[half:]]
        first, second = workdir / "part-1.tflite", workdir / "part-2.tflite"
        with _second_process(rebuild, settings, names, second) as result:
            _lower_signatures(signatures[:half], streamed, first, step)
            del edge, signatures
            step(f"waiting for {', '.join(names)} (second process)")
            streamed.used |= set(result())
        from litert.merging import merge

        merge(first, second, float_path)  # deletes `second`
        first.unlink()
    else:
        _lower_signatures(signatures, streamed, float_path, step)
    from litert_torch.quantize import translate_recipe

    from litert import quantizing

    recipe = own_recipe or (
        translate_recipe.translate_to_ai_edge_recipe(quant_config.generative_recipe) if quant_config else None
    )
    if (
        streamed is not None
        and recipe is not None
        and quantizing.enabled()
        and quantizing.quantizes_from_checkpoint(recipe)
    ):
        return Lowered(float_path, recipe, streamed)  # the weights go from the checkpoint into the quantizer
    if streamed is not None:
        step("writing the weights")
        streaming.fill(float_path, streamed)
    return Lowered(float_path, recipe)


def _signatures(module: Any, settings: ExportSettings) -> tuple[Any, Any, bool]:
    """litert-torch's converter holding the signatures of the settings, the quantization
    config, and whether ai-edge-quantizer applies it (after lowering)."""
    import torch
    from litert_torch._convert import interface as converter_utils
    from litert_torch.generative.layers import kv_cache as kv_utils
    from litert_torch.generative.utilities import converter
    from litert_torch.generative.utilities import export_config as export_config_lib
    from litert_torch.quantize import quant_config as qcfg

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
    quant_config = (
        None if settings.quantize in OWN_RECIPES else converter.get_quant_recipe_from_flag(settings.quantize, config)
    )
    by_quantizer = (
        quant_config is None or quant_config._quantizer_mode == qcfg.QuantConfig._QuantizerMode.AI_EDGE_QUANTIZER
    )
    return edge, quant_config, by_quantizer


def _lower_signatures(signatures: list[Any], streamed: Any, path: Path, step: Callable[[str], None]) -> None:
    """Trace and lower `signatures` into one float .tflite at `path`."""
    import contextlib

    import torch
    from litert_torch._convert import core, litert_converter

    from litert.disk import ensure_room

    watch = streaming.watching_lowering(streamed) if streamed is not None else contextlib.nullcontext()
    with torch.inference_mode(False), watch:
        programs = []
        for i, sig in enumerate(signatures):
            step(f"tracing {getattr(sig, 'name', None) or f'signature {i + 1}'}")
            programs.append(core._run_convert_passes(core.export_torch_signature(sig, run_decompositions=False)))
        step("lowering to a flatbuffer")
        exporter = litert_converter.exported_programs_to_flatbuffer(
            programs, signatures, lightweight_conversion=True, runtime_constant_folding=False
        )
    del programs
    ensure_room(path, _weight_bytes(signatures))  # the writer ends the process on a full disk
    exporter.to_file(str(path))
    del exporter
    release_traced_graphs()


def _weight_bytes(signatures: list[Any]) -> int:
    """The bytes of the weights the signatures' modules hold, each storage counted once (tied
    and shared weights are one constant in the flatbuffer): about the float model's size."""
    seen: dict[int, int] = {}
    for sig in signatures:
        module = getattr(sig, "module", None)
        if module is None:
            continue
        for tensor in [*module.parameters(), *module.buffers()]:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr() or id(storage)] = storage.nbytes()
    return sum(seen.values())


@contextlib.contextmanager
def _second_process(rebuild: Rebuild, settings: ExportSettings, names: list[str], path: Path) -> Iterator[Any]:
    """Run `lower_in_second_process` in a fresh process; yield a function that waits for its
    result (raising what it raised). The process is stopped if this context is left early."""
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(lower_in_second_process, rebuild, settings, names, path)
    done = False
    try:
        yield future.result
        done = True
    finally:
        if not done:
            for process in list((pool._processes or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def lower_in_second_process(rebuild: Rebuild, settings: ExportSettings, names: list[str], path: Path) -> list[str]:
    """In the second process: build the streamed model again, lower the signatures `names`
    to `path`, and return the streamed parameters the lowering used."""
    import multiprocessing
    import signal

    from litert.lifetime import die_with_parent
    from litert.plugins import get_plugins

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:  # the conversion killed outright takes this process with it
        die_with_parent(signal.SIGKILL, parent.pid, 1)

    with streaming.streaming():
        module = get_plugins().call(rebuild.plugin, "build_model", claim=rebuild.claim, settings=settings)
    streamed = getattr(module, streaming.ATTRIBUTE, None)
    if streamed is None:
        raise streaming.NotStreamable("the second process built the model without streamed weights")
    edge, _, _ = _signatures(module, settings)
    _lower_signatures([sig for sig in edge._signatures if sig.name in names], streamed, path, lambda label: None)
    return sorted(streamed.used)


def release_traced_graphs() -> None:
    """Drop torch's module-level reference to the last traced graph.

    torch.export keeps the nodes of its last trace in a global map; litert-torch's
    lowering puts the weights themselves into those nodes' arguments, so without this
    the whole fp32 model outlives `lower` and the quantizer runs beside it (Qwen3-1.7B
    peaked at 12.4 GB that way). The caller frees the rest with the module.
    """
    from torch.fx.experimental import proxy_tensor

    getattr(proxy_tensor, "_FAKE_TENSOR_ID_TO_PROXY_MAP_FOR_EXPORT", {}).clear()


def _positive_block_scales(model: Any, path: Path) -> int:
    """Give each block of all-zero int4 weights scale 1.0 instead of 0.0; return how many
    scales were changed in the flatbuffer itself (those in weight data stored after it are
    written into `path` in place).

    The quantizer's min-max scale of a block whose 32 weights are all zero is 0, and XNNPACK
    refuses the whole tensor for it ("unsupported scale value (0.000000) … for INT4 tensor"):
    the interpreter fails and LiteRT-LM cannot allocate the model (real Qwen2.5-Coder-1.5B
    at dynamic_int4_block32). The block's quantized values are all 0 and symmetric (no zero
    point), so any scale dequantizes them to the same zeros.
    """
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {schema.TensorType.FLOAT16: np.float16, schema.TensorType.FLOAT32: np.float32}
    inline, seen = 0, set()
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            q = tensor.quantization
            if q is None or q.detailsType != schema.QuantizationDetails.BlockwiseQuantization:
                continue
            if q.details.zeroPoints not in (None, -1):
                continue  # not the symmetric case: leave it
            scales = subgraph.tensors[q.details.scales]
            if scales.buffer in seen or scales.type not in dtypes:
                continue
            seen.add(scales.buffer)
            buffer = model.buffers[scales.buffer]
            if buffer.data is not None and len(buffer.data):
                values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtypes[scales.type]).copy()
                if (values == 0).any():
                    inline += int((values == 0).sum())
                    values[values == 0] = 1
                    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            elif buffer.offset > 1:
                with open(path, "r+b") as f:
                    f.seek(buffer.offset)
                    values = np.frombuffer(f.read(buffer.size), dtypes[scales.type]).copy()
                    if (values == 0).any():
                        values[values == 0] = 1
                        f.seek(buffer.offset)
                        f.write(values.tobytes())
    return inline


def share_quantization_parameters(path: Path) -> int:
    """Store each distinct set of quantization parameters once in the .tflite; return the bytes
    saved. On the way, all-zero int4 weight blocks get a positive scale (`_positive_block_scales`).

    Every signature (prefill_8, prefill_64, ..., decode) is its own subgraph, and each of
    its tensors carries its own copy of the weights' per-channel scales and zero points,
    although the weights themselves are shared buffers. For Qwen3-0.6B that is 5.9 MB per
    signature: 41 MB of a 645 MB bundle. A flatbuffer table may be referenced from many
    places, so the file is re-serialized with one table per distinct content and every
    tensor pointing at it; nothing the runtime reads changes value (the tests compare
    parity and generations with and without). Weight data stored after the flatbuffer
    (buffers with an offset) is moved as it is, its offsets corrected.
    """
    import shutil

    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    head, data_start = read_head(path)  # the flatbuffer only: weights stored after it are not read
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(head, 0))
    canon: dict[tuple[Any, ...], Any] = {}
    tables = 0

    def key(q: Any) -> tuple[Any, ...]:
        raw = [None if v is None else np.asarray(v).tobytes() for v in (q.scale, q.zeroPoint, q.min, q.max)]
        return (*raw, q.quantizedDimension, q.detailsType, repr(q.details))

    fixed = _positive_block_scales(model, path)
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            if tensor.quantization is not None:
                tables += 1
                tensor.quantization = canon.setdefault(key(tensor.quantization), tensor.quantization)
    if tables == len(canon) and not fixed:
        return 0

    def serialize() -> bytes:
        memo: dict[int, int] = {}
        original = schema.QuantizationParametersT.Pack

        def pack_once(self: Any, builder: Any) -> int:
            if id(self) not in memo:
                memo[id(self)] = original(self, builder)
            return memo[id(self)]

        schema.QuantizationParametersT.Pack = pack_once
        try:
            builder = flatbuffers.Builder(1 << 20)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            return bytes(builder.Output())
        finally:
            schema.QuantizationParametersT.Pack = original

    flat = serialize()
    external = [b for b in model.buffers or [] if b.offset > 1]
    if external:
        start = -(-len(flat) // 64) * 64  # the weights stay 64-byte aligned
        for buffer in external:
            buffer.offset -= data_start - start
        again = serialize()
        assert len(again) == len(flat), "offsets are fixed-width: the size cannot change"
        flat = again + bytes(start - len(flat))
    tmp = path.with_name(path.name + ".shared")
    with open(tmp, "wb") as out, open(path, "rb") as f:
        out.write(flat)
        f.seek(data_start)
        shutil.copyfileobj(f, out, 16 << 20)
    saved = path.stat().st_size - tmp.stat().st_size
    tmp.replace(path)
    return saved
