"""litert's export path against litert-torch's own, on the tiny Qwen3.

`litert.lowering.lower` + `quantize` leave out steps that cost minutes on full-size
models (the pre-convert decomposition pass, the runtime constant-folding round trip, the
float model as Python bytes, quantizing while the torch model is alive). The claim is
that nothing in the output changes: the .tflite must be byte-identical to what
litert-torch's `Converter.convert(lightweight_conversion=True)` writes for the same model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from litert.checkpoint import load_checkpoint
from litert.modeling import skip_init
from litert.plugins import get_plugins
from litert.types import ExportSettings


def build(path: Path, settings: ExportSettings):
    plugins = get_plugins()
    name, claim = plugins.claim(load_checkpoint(path))
    return plugins.call(name, "build_model", claim=claim, settings=settings)


def upstream_lightweight(module, settings: ExportSettings, out: Path) -> bytes:
    """litert-torch's steps with its own lightweight lever, as upstream runs them."""
    from litert_torch._convert import interface
    from litert_torch.generative.layers import kv_cache as kv_utils
    from litert_torch.generative.utilities import converter
    from litert_torch.generative.utilities import export_config as export_config_lib

    edge = interface.Converter()
    export_config = export_config_lib.ExportConfig(mask_as_input=True, kvcache_layout=kv_utils.KV_LAYOUT_TRANSPOSED)
    converter._add_signatures(
        edge, module, list(settings.prefill_lengths), settings.kv_cache_max_len, None, 0, module.config, [None],
        export_config,
    )  # fmt: skip
    quant = converter.get_quant_recipe_from_flag(settings.quantize, module.config)
    with torch.inference_mode(False):
        edge.convert(quant_config=quant, lightweight_conversion=True).export(str(out))
    return out.read_bytes()


@pytest.mark.parametrize("quantize", ["dynamic_int8", "none"])
def test_export_is_byte_identical_to_upstream_lightweight_conversion(
    quantize: str, tiny_qwen3: Path, tmp_path: Path
) -> None:
    from litert.lowering import lower, share_quantization_parameters
    from litert.quantizing import quantize as apply_recipe

    settings = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=128, quantize=quantize)
    (tmp_path / "ours").mkdir()
    lowered = lower(build(tiny_qwen3, settings), settings, tmp_path / "ours")
    assert (lowered.recipe is not None) == (quantize != "none")
    ours = apply_recipe(lowered, tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["model.tflite"]  # float file removed
    theirs = upstream_lightweight(build(tiny_qwen3, settings), settings, tmp_path / "upstream.tflite")
    if quantize != "none":
        # One documented difference: each distinct set of quantization parameters is stored
        # once, not once per tensor of every signature. Every signature computes the same
        # numbers, bit for bit; with that pass applied to upstream's file the bytes agree.
        assert len(ours.read_bytes()) < len(theirs)
        assert_same_outputs(ours.read_bytes(), theirs)
        saved = share_quantization_parameters(tmp_path / "upstream.tflite")
        assert saved == len(theirs) - len(ours.read_bytes())
        theirs = (tmp_path / "upstream.tflite").read_bytes()
    assert len(ours.read_bytes()) == len(theirs)
    assert ours.read_bytes() == theirs


def assert_same_outputs(a: bytes, b: bytes) -> None:
    """Every signature of two .tflite models gives identical outputs on the same inputs."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    first, second = Interpreter(model_content=a), Interpreter(model_content=b)
    signatures = first.get_signature_list()
    assert signatures == second.get_signature_list() and len(signatures) >= 2
    for name in signatures:
        run_a, run_b = first.get_signature_runner(name), second.get_signature_runner(name)
        inputs = {}
        for key, detail in run_a.get_input_details().items():
            shape, dtype = detail["shape"], detail["dtype"]
            if key == "tokens":
                inputs[key] = rng.integers(0, 100, shape).astype(dtype)
            elif key == "input_pos":
                inputs[key] = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
            elif key == "mask":
                inputs[key] = np.zeros(shape, dtype)
            else:
                inputs[key] = rng.normal(size=shape).astype(dtype)
        out_a, out_b = run_a(**inputs), run_b(**inputs)
        assert out_a.keys() == out_b.keys()
        for key in out_a:
            assert np.array_equal(out_a[key], out_b[key]), (name, key)


def test_skip_init_restores_torch_init_even_when_construction_fails() -> None:
    original = torch.nn.init.kaiming_uniform_
    with pytest.raises(RuntimeError, match="constructor failed"), skip_init():
        assert torch.nn.init.kaiming_uniform_ is not original
        raise RuntimeError("constructor failed")
    assert torch.nn.init.kaiming_uniform_ is original


def test_the_model_is_freed_before_quantizing(tiny_qwen3: Path, tmp_path: Path) -> None:
    # torch.export keeps its last trace in a global map, and the lowering puts the weights
    # into that trace's nodes: unless released, the fp32 model outlives `lower` and the
    # quantizer's copy comes on top of it (12.4 GB instead of ~8.5 GB for Qwen3-1.7B).
    import gc
    import weakref

    from litert.lowering import lower

    settings = ExportSettings(prefill_lengths=(8,), kv_cache_max_len=128)
    module = build(tiny_qwen3, settings)
    weights = [weakref.ref(p) for p in module.parameters()]
    lowered = lower(module, settings, tmp_path)
    del module
    gc.collect()
    assert lowered.path.is_file()
    assert [w for w in weights if w() is not None] == []


def _converted_types(checkpoint: Path, quantize: str, tmp_path: Path) -> tuple[object, dict[int, str]]:
    """Convert `checkpoint` with `quantize` (parity checked): its prefill/decode model as a
    flatbuffer object, and the names of its tensor types."""
    import json

    from ai_edge_litert import schema_py_generated as schema

    from conftest import SMALLEST, run_cli
    from litert.bundle import read_bundle

    out = tmp_path / f"{quantize}.litertlm"
    result = run_cli("convert", checkpoint, *SMALLEST, "--quantize", quantize, "-o", out, "--json",
                     home=tmp_path / "home")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parity"]["passed"]
    info = read_bundle(out)
    model = schema.ModelT.InitFromPackedBuf(info.read(info.models()["tf_lite_prefill_decode"]), 0)
    return model, {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def test_mixed_recipe_puts_int4_in_the_mlp_and_int8_elsewhere(tiny_qwen3: Path, tmp_path: Path) -> None:
    """`dynamic_int4_mlp`: the MLP's weights int4 in blocks of 32, the attention's and the
    embedding's int8, and the bundle still passes its parity check (litert-torch's own
    feed-forward scope matches no op of litert's models, so the rule is litert's)."""
    model, names = _converted_types(tiny_qwen3, "dynamic_int4_mlp", tmp_path)
    kinds: dict[str, set[str]] = {"mlp": set(), "attention": set()}
    for tensor in model.subgraphs[0].tensors:
        name = tensor.name.decode()
        if len(tensor.shape) != 2 or min(tensor.shape) < 32:
            continue
        scope = "mlp" if "feed_forward" in name else "attention" if "attention" in name else None
        if scope:
            kinds[scope].add(names[tensor.type])
    assert kinds == {"mlp": {"INT4"}, "attention": {"INT8"}}, kinds


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_int4_with_an_int8_head_keeps_the_head_int8_and_its_weight_stored_once(family: str, tmp_path: Path) -> None:
    """`dynamic_int4_int8_head`: every weight int4 in blocks of 32 but the LM head's, int8 per
    channel. The tiny Qwen3's head is its embedding's weight: int8 both, stored once; the tiny
    Llama's head is a weight of its own: int8, and its embedding int4."""
    import importlib
    import json

    tiny = importlib.import_module(f"litert_{family}").TINY_CHECKPOINT
    vocab = json.loads((tiny / "config.json").read_text())["vocab_size"]
    model, names = _converted_types(tiny, "dynamic_int4_int8_head", tmp_path)
    vocab_rows: dict[int, str] = {}  # buffer -> type: the embedding and the head, each weight once
    others = set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if len(tensor.shape) != 2 or min(tensor.shape) < 32 or model.buffers[tensor.buffer].data is None:
                continue
            if tensor.shape[0] == vocab:
                vocab_rows[tensor.buffer] = names[tensor.type]
            elif names[tensor.type] in ("INT4", "INT8"):
                others.add(names[tensor.type])
    assert others == {"INT4"}
    expected = ["INT8"] if family == "qwen3" else ["INT4", "INT8"]
    assert sorted(vocab_rows.values()) == expected, vocab_rows


def test_int4_blocks_of_zero_weights_still_run(tiny_qwen3: Path, tmp_path: Path) -> None:
    """A block of 32 weights that are all zero gets scale 0 from the quantizer, and XNNPACK
    then refuses the whole tensor (real Qwen2.5-Coder-1.5B at dynamic_int4_block32: verify
    "unexpected RuntimeError: unsupported scale value (0.000000) … for INT4 tensor", the
    runtime "Failed to allocate tensors"). Such blocks get a scale that dequantizes to the
    same zeros: the bundle verifies and answers."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from conftest import SMALLEST, run_cli

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen3, ckpt)
    weights = load_file(str(ckpt / "model.safetensors"))
    name = "model.layers.0.mlp.down_proj.weight"
    weights[name] = weights[name].clone()
    weights[name][3, :32] = 0.0  # one block of 32, all zero
    save_file(weights, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "int4.litertlm"
    result = run_cli("convert", ckpt, *SMALLEST, "--quantize", "dynamic_int4_block32", "-o", out, "--json",
                     home=tmp_path / "home")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parity"]["passed"]
