"""The second way to build: litert-torch's transformers-native exporter (`export_hf`).

For families the classic generative layers cannot express (Gemma 4's per-layer embeddings
and shared KV, LFM2's short convolutions), a plugin answers `build_model` with a
`NativeExport`. The exporter then traces transformers' own modules (patched by
litert-torch for export) with the recipe and the lengths always explicit, and writes its
own `.litertlm`; from that file the models are taken (prefill/decode, and the embedders
when externalized) with the executor metadata that says which of their tensors are state
the runtime carries from step to step; the bundle around them — metadata, tokenizer, chat
template, summary, parity — is written by `litert.bundle` as for every other family.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litert.errors import LitertError
from litert.types import NATIVE_RECIPES, NativeExport

if TYPE_CHECKING:
    from litert.bundle import ExportedModels

MODEL_SECTION = "tf_lite_prefill_decode"
EXECUTOR_METADATA_SECTION = "ExecutorMetadataProto"
STATEFUL_MODEL_TYPES = frozenset({"lfm2", "qwen3_5", "qwen3_5_text"})
"""Models whose layers carry a fixed-size state (short convolutions, linear attention)
from one chunk to the next: their prefill must not count the runtime's padding."""


def exporter_recipe(quantize: str) -> str:
    """The exporter's name for litert's recipe, or a refusal naming the ones it has."""
    recipe = NATIVE_RECIPES.get(quantize)
    if recipe is None:
        raise LitertError(
            f"--quantize {quantize} is not available for this family: it is built by litert-torch's "
            "transformers-native exporter, which has no such recipe",
            f"use one of: {', '.join(NATIVE_RECIPES)}",
        )
    return recipe


@contextlib.contextmanager
def version_shims() -> Iterator[None]:
    """Where the pinned litert-torch disagrees with transformers or with LiteRT-LM, make them
    agree for one export (each shim below says what it mends and how it was found); the
    patched methods are restored afterwards."""
    patches = [*_lfm2_shims(), *_qwen3_5_shims(), _gemma4_softcap_shim()]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _lfm2_shims() -> list[tuple[type, str, Callable[..., Any]]]:
    """LFM2, three shims.

    - transformers 5 renamed the decoder layer's `past_key_values` argument to `cache`;
      litert-torch's patched layer still reads `past_key_values`, gets None and fails in its
      short convolution. The patched layer is given the cache under its old name.
    - The prefill's padding: the exported graph tells a chunk's tokens from its padding by
      `tokens != pad_token_id` (the tokenizer's pad id), and the short convolutions keep the
      last valid tokens as their state. LiteRT-LM pads a chunk with token 0 at position 0,
      so for any tokenizer whose pad id is not 0 (a fine-tune padding with `<|im_end|>`, say)
      the padding entered the convolution state and the runtime's answers parted from
      transformers'; where the pad id is a real token, the prompt's own turn ends were
      dropped from the state. The tokens are told by position instead (`valid_by_position`),
      as the exporter already does for embedding inputs.
    - A conversation's start: LiteRT-LM 0.18.1 begins each conversation at position 0 on the
      state buffers the last one left — harmless for a KV cache (stale entries are masked),
      not for a convolution state: the same question asked twice on one engine was answered
      differently from its second token. At position 0 the graph starts from an empty state.

    The last two were found by driving the bundle's .tflite as the runtime does (the last
    token of each prefill call held for the next step, zero padding) beside transformers:
    the KV caches agreed, the convolution states did not. Exact in every correct case.
    """
    from litert_torch.generative.export_hf.core import exportable_module
    from litert_torch.generative.export_hf.model_ext.lfm2 import patch as lfm2_patch
    from litert_torch.generative.export_hf.model_ext.lfm2 import short_conv as lfm2_short_conv

    layer = lfm2_patch.PatchedLfm2DecoderLayer
    original_layer = layer.forward

    def layer_forward(self, hidden_states, *args, cache=None, past_key_values=None, **kwargs):
        return original_layer(
            self, hidden_states, *args, past_key_values=cache if past_key_values is None else past_key_values, **kwargs
        )

    base = exportable_module.LiteRTExportableModuleForDecoderOnlyLM
    original_adapt = base.adapt_inputs
    adapt_signature = inspect.signature(original_adapt)

    def adapt_inputs(self, *args, **kwargs):
        inputs = original_adapt(self, *args, **kwargs)
        input_pos = adapt_signature.bind(self, *args, **kwargs).arguments.get("input_pos")
        if self.model.config.model_type in STATEFUL_MODEL_TYPES and "valid_mask" in inputs and input_pos is not None:
            inputs["valid_mask"] = valid_by_position(input_pos)
        return inputs

    conv = lfm2_short_conv.Lfm2ShortConv
    original_conv = conv.forward

    def conv_forward(self, hidden_states, past_key_values=None, cache_position=None, **kwargs):
        if past_key_values is not None and cache_position is not None:
            layer_cache = past_key_values.layers[self.layer_idx]
            layer_cache.conv_states = layer_cache.conv_states * (cache_position[:1] > 0).to(hidden_states.dtype)
        return original_conv(
            self, hidden_states, past_key_values=past_key_values, cache_position=cache_position, **kwargs
        )

    return [(layer, "forward", layer_forward), (base, "adapt_inputs", adapt_inputs), (conv, "forward", conv_forward)]


def _qwen3_5_shims() -> list[tuple[type, str, Callable[..., Any]]]:
    """Qwen3.5, two shims (its prefill's padding is told by position as LFM2's, above).

    - Its gated delta net (linear attention) is exported as plain operations, not as the
      fused `gated_delta_update` custom op: only LiteRT-LM runs that op — litert's own
      `.tflite` runner cannot, so the bundle could not be verified — and LiteRT-LM 0.18.1's
      answers with it parted from transformers' at the first token on every prompt tried,
      while the plain operations' answers are transformers' whole (a 4-layer Qwen3.5 made by
      transformers, 6 raw prompts of 3–72 tokens, 16 tokens each). litert-torch's patch
      reads `use_fused_gdn` and `gdn_mode` (1: a prefill of 64 tokens or more in chunks of
      64, rather than unrolled token by token) from the export's extra keywords, which its
      own validation refuses as unknown: the keys are made known.
    - A conversation's start: as for LFM2, the convolution and recurrent states are emptied
      at position 0, where LiteRT-LM hands the graph the last conversation's.
    """
    from litert_torch.generative.export_hf.core import exportable_module_config
    from litert_torch.generative.export_hf.model_ext.qwen3_5 import modeling_qwen3_5_static

    config = exportable_module_config.ExportableModuleConfig
    original_init = config.__post_init__

    def post_init(self):
        known = exportable_module_config._KNOWN_EXTRA_KWARGS
        exportable_module_config._KNOWN_EXTRA_KWARGS = frozenset(known) | {"use_fused_gdn", "gdn_mode"}
        try:
            original_init(self)
        finally:
            exportable_module_config._KNOWN_EXTRA_KWARGS = known

    net = modeling_qwen3_5_static.Qwen3_5StaticGatedDeltaNet
    original_net = net.forward

    def net_forward(self, hidden_states, positions=None, past_key_values=None, valid_mask=None, **kwargs):
        import torch

        where = positions if positions is not None else kwargs.get("position_ids")
        if past_key_values is not None and where is not None and hasattr(past_key_values, "layers"):
            layer_cache = past_key_values.layers[self.layer_idx]
            started = where.reshape(-1)[:1] > 0
            layer_cache.conv_states = layer_cache.conv_states * started.to(layer_cache.conv_states.dtype)
            layer_cache.recurrent_states = layer_cache.recurrent_states * started.to(layer_cache.recurrent_states.dtype)
        if valid_mask is not None and valid_mask.dtype == torch.bool:
            valid_mask = valid_mask.to(hidden_states.dtype)  # the position-told mask is boolean
        return original_net(
            self, hidden_states, positions=positions, past_key_values=past_key_values, valid_mask=valid_mask, **kwargs
        )

    return [(config, "__post_init__", post_init), (net, "forward", net_forward)]


def _gemma4_softcap_shim() -> tuple[type, str, Callable[..., Any]]:
    """Gemma 4 with an externalized embedder: litert-torch's decode module computes the logits
    as `lm_head(hidden_states)` and leaves out the final logit soft-capping (`tanh(logits /
    cap) * cap`, cap 30) that transformers' `forward` applies. The greedy token is the same
    (tanh keeps the order), but every logit above a few units comes out too large — a
    sampled answer draws from another distribution. Found by comparing each layer's output
    of the exported graph with transformers' (all exact to 1e-6, the logits off by up to
    0.3): the logits are soft-capped here as transformers does."""
    from litert_torch.generative.export_hf.model_ext.gemma4 import exportable_module as gemma4_modules

    decode = gemma4_modules.LiteRTExportableModuleForDecoderOnlyLMGenerateExternalEmbedder
    original_decode = decode.forward
    # a litert-torch that caps the logits itself must not have them capped twice
    caps_itself = "softcap" in inspect.getsource(original_decode)

    def decode_forward(self, *args, **kwargs):
        output = original_decode(self, *args, **kwargs)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap is not None and "logits" in output and not caps_itself:
            import torch

            output["logits"] = torch.tanh(output["logits"] / cap) * cap
        return output

    return decode, "forward", decode_forward


def valid_by_position(input_pos):
    """Which of a prefill chunk's entries are the prompt's, as `[1, T]` booleans: the first
    always, then each whose position rises over the one before (LiteRT-LM pads a chunk
    with position 0)."""
    import torch

    rising = input_pos[1:] > input_pos[:-1]
    return torch.cat([torch.ones_like(input_pos[:1], dtype=torch.bool), rising]).unsqueeze(0)


def export_native(
    native: NativeExport,
    checkpoint: Path,
    prefill_lengths: tuple[int, ...],
    kv_cache_max_len: int,
    recipe: str,
    workdir: Path,
    step: Callable[[str], None],
) -> ExportedModels:
    """Run the exporter on `checkpoint` into `workdir` with the exporter's `recipe`
    (`exporter_recipe`); the models it made."""
    from litert_torch.generative.export_hf import export as export_hf

    from litert.bundle import ExportedModels, read_bundle

    out = workdir / "native"
    options = dict(native.options)
    if native.externalize_embedder:
        options["externalize_embedder"] = True
    if native.moe_implementation:
        options["moe_exports_implementation"] = native.moe_implementation
    step(f"tracing transformers' modules and lowering ({recipe})")
    with version_shims():
        export_hf.export(
            str(checkpoint),
            str(out),
            quantization_recipe=recipe,
            prefill_lengths=list(prefill_lengths),
            cache_length=kv_cache_max_len,
            trust_remote_code=False,
            bundle_litert_lm=True,
            **options,
        )
    produced = out / "model.litertlm"
    if not produced.is_file():
        raise LitertError("the transformers-native exporter wrote no bundle", "run again with --verbose")
    step("taking the models from the exporter's bundle")
    info = read_bundle(produced)
    main, others = None, []
    for i, section in enumerate(s for s in info.sections if s.data_type == "TFLiteModel"):
        kind = section.items.get("model_type", MODEL_SECTION)
        path = workdir / f"native-{i}-{kind}.tflite"
        path.write_bytes(info.read(section))  # one section at a time, not the whole bundle
        if kind == MODEL_SECTION and main is None:
            main = path
        else:
            others.append((path, kind))
    executor_metadata = None
    section = info.section(EXECUTOR_METADATA_SECTION)
    if section is not None:
        executor_metadata = workdir / "native-executor-metadata.pb"
        executor_metadata.write_bytes(info.read(section))
    produced.unlink()
    if main is None:
        raise LitertError("the transformers-native exporter wrote no prefill/decode model", "run again with --verbose")
    return ExportedModels(main=main, others=tuple(others), executor_metadata=executor_metadata)
