"""Quantizing streamed weights from the checkpoint (litert.quantizing).

The claim: with a min-max recipe the quantizer is handed each streamed weight's values from
the checkpoint when it reaches it (its rows in parts on two threads), and the
quantized model comes out byte for byte as filling the float model and quantizing it makes
it — for every recipe, whether the recipe quantizes every weight or leaves some float. As
in test_streaming, litert-torch's resource-constant size is lowered to 4 KB so that the
tiny model's weights stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litert import streaming
from litert.checkpoint import load_checkpoint
from litert.plugins import get_plugins
from litert.types import ExportSettings


@pytest.fixture(autouse=True)
def small_resource_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOURCE_CONSTANT_NUMEL_THRESHOLD", "4096")


def build(path: Path, settings: ExportSettings, streamed: bool):
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path))
    with streaming.streaming(streamed):
        return plugins.call(name, "build_model", claim=claim, settings=settings)


def fully_connected_only() -> object:
    """A recipe that quantizes the linear layers and leaves the embedding lookup float."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_quantization_config(
        ".*",
        qtyping.TFLOperationName.FULLY_CONNECTED,
        qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE
            ),
            compute_precision=qtyping.ComputePrecision.INTEGER,
            explicit_dequantize=False,
        ),
        algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT,
    )
    return rm.get_quantization_recipe()


def recipe_for(quantize: str, config: object) -> object:
    """The ai-edge-quantizer recipe `lower` gives for a --quantize name."""
    from litert_torch.generative.utilities import converter
    from litert_torch.quantize import translate_recipe

    from litert.recipes import litert_recipe, tied

    if quantize == "fully connected only":
        return fully_connected_only()
    if own := litert_recipe(quantize, tied(config)):
        return own
    flag = converter.get_quant_recipe_from_flag(quantize, config)
    return translate_recipe.translate_to_ai_edge_recipe(flag.generative_recipe)


def tiny(family: str) -> Path:
    import importlib

    return importlib.import_module(f"litert_{family}").TINY_CHECKPOINT


@pytest.fixture(scope="module")
def lowered_tiny(tmp_path_factory: pytest.TempPathFactory):
    """family -> its tiny model lowered once streamed (markers in the float model) and once
    loaded, each with its litert-torch config."""
    lowered: dict[str, dict[bool, tuple[object, object]]] = {}

    def get(family: str) -> dict[bool, tuple[object, object]]:
        if family not in lowered:
            lowered[family] = lower_both(tiny(family), tmp_path_factory)
        return lowered[family]

    return get


@pytest.fixture
def float_models(lowered_tiny) -> dict[bool, tuple[object, object]]:
    """The tiny Qwen3 (embedding and LM head tied) lowered streamed and loaded."""
    return lowered_tiny("qwen3")


def lower_both(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[object, object]]:
    from litert import lowering

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RESOURCE_CONSTANT_NUMEL_THRESHOLD", "4096")
    settings = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64, quantize="dynamic_int8")
    lowered = {}
    try:
        for streamed in (True, False):
            work = tmp_path_factory.mktemp("streamed" if streamed else "loaded")
            module = build(checkpoint, settings, streamed)
            lowered[streamed] = (lowering.lower(module, settings, work), module.config)
            del module
    finally:
        monkeypatch.undo()
    assert lowered[True][0].streamed is not None and lowered[False][0].streamed is None
    return lowered


@pytest.mark.parametrize(
    ("family", "quantize"),
    [
        *[
            ("qwen3", q)
            for q in ("dynamic_int8", "weight_only_int8", "dynamic_int4_block32", "dynamic_int4_mlp", "fp16")
        ],
        # tied (qwen3): the embedding int8 with its head; untied (llama): the head alone
        *[(family, "dynamic_int4_int8_head") for family in ("qwen3", "llama")],
        ("qwen3", "fully connected only"),
        ("llama", "dynamic_int8"),  # an LM head of its own: the embedding's group is read twice
    ],
)
def test_quantized_from_the_checkpoint_is_byte_identical_to_fill_then_quantize(
    family: str, quantize: str, lowered_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import shutil

    from litert import quantizing
    from litert.quantizing import quantize as apply_recipe
    from litert.quantizing import quantizes_from_checkpoint

    monkeypatch.setattr(quantizing, "SPLIT_FROM", 4096)  # every streamed weight in parts on two threads
    monkeypatch.setattr(quantizing, "PART_BYTES", 24 << 10)  # 256 x 64 in 3 parts of uneven rows
    parted: list[int] = []
    parts = quantizing._parts
    monkeypatch.setattr(quantizing, "_parts", lambda shape: (found := parts(shape), parted.append(len(found)))[0])
    filled: list[object] = []
    fill = streaming.fill
    monkeypatch.setattr(streaming, "fill", lambda path, s, only=None: (filled.append(only), fill(path, s, only)))
    float_models = lowered_tiny(family)
    results = {}
    for streamed in (True, False):
        template, config = float_models[streamed]
        work = tmp_path / ("streamed" if streamed else "loaded")
        work.mkdir()
        shutil.copy(template.path, work / template.path.name)
        recipe = recipe_for(quantize, config)
        lowered = dataclasses.replace(template, path=work / template.path.name, recipe=recipe)
        if streamed:
            markers = streaming.marked_buffers(lowered.path)
            assert len(markers) == len(lowered.streamed.names) >= 4, "the weights must still be markers"
            assert quantizes_from_checkpoint(recipe) == (quantize != "fp16")
        out = apply_recipe(lowered, work)
        assert sorted(p.name for p in work.iterdir()) == ["model.tflite"]  # float model and weight file gone
        assert streaming.marked_buffers(out) == {}
        results[streamed] = out.read_bytes()
        if streamed:
            names = float_models[True][0].streamed.names
            if quantize == "fp16":  # float casting reads the values itself: the float model is filled first
                assert filled == [None]
            elif quantize == "fully connected only":  # the embedding stays float: filled in the quantized model
                assert len(filled) == 1 and filled[0] and set(filled[0]) < set(names)
                assert all("embedding" in name for name in filled[0])
            else:  # every weight went from the checkpoint into the quantizer, in parts
                assert filled == []
                assert max(parted) >= 3
    assert results[True] == results[False]


@pytest.mark.parametrize("from_checkpoint", ["1", "0"])
def test_the_progress_counts_the_steps_each_way_takes(
    from_checkpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "writing the weights" is a step of its own only when the float model is filled first
    (LITERT_QUANTIZE_FROM_CHECKPOINT=0): the display's count must match ("8/7" was shown)."""
    from litert import lowering

    monkeypatch.setenv("LITERT_QUANTIZE_FROM_CHECKPOINT", from_checkpoint)
    settings = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=64, quantize="dynamic_int8")
    steps: list[str] = []
    lowered = lowering.lower(build(tiny("qwen3"), settings, True), settings, tmp_path, step=steps.append)
    steps.append("quantizing")  # convert's own step before `quantize`
    assert ("writing the weights" in steps) == (from_checkpoint == "0")
    assert (lowered.streamed is not None) == (from_checkpoint == "1")
    assert len(steps) == lowering.planned_steps(settings, streamed=True, parallel=False)
