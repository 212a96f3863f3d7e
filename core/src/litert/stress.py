"""Stress variants: prove a plugin's `build_model` against transformers on checkpoints it did not make.

A tiny checkpoint trained by the plugin's author shares the author's blind spots: with
one KV head, a wrong q/k/v layout is invisible; with biases trained from zero, a model
that drops them is off by little. Here every parameter is re-drawn at random with a
realistic spread (biases |b| ~ 0.5, norm scales between 0.2 and 2.0) and the config
fields a family accepts are swept: KV heads 1, 2 and all, a head_dim that is not
hidden/heads, tied and untied heads, an odd layer count, a sliding window shorter than
the prompt, biases switched on. Each variant is built by transformers itself (from the
config, no checkpoint code), saved as safetensors, built again through the plugin's
hooks, and the two models' logits are compared on the same tokens, in float32, at the
torch level (no export): a variant takes about a second.

Public for plugin authors: the plugin kit (`litert.testing.PluginConformance`) runs
every variant; `make_variant` and `compare` are usable on their own, e.g. to debug one::

    from litert import stress
    variant = stress.variant_named("kv_heads_2")
    path = stress.make_variant(TINY_CHECKPOINT, variant, tmp_path / "kv2")
    result = stress.compare("myfamily", path)
    assert result.ok, result.describe()
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from litert.errors import LitertError

__all__ = [
    "KV_CACHE_LEN",
    "PROMPT_TOKENS",
    "TOLERANCE",
    "VARIANTS",
    "VARIANT_NAMES",
    "WINDOW",
    "Comparison",
    "NotApplicable",
    "StressVariant",
    "build",
    "compare",
    "compare_native",
    "litert_torch_logits",
    "make_variant",
    "prompt_ids",
    "reference_logits",
    "variant_named",
]

PROMPT_TOKENS = 24
"""Tokens compared per variant: longer than the window of the window variant."""
KV_CACHE_LEN = 64
WINDOW = 5
"""The window of the `window_shorter_than_prompt` variant."""
TOLERANCE = 1e-5
"""Largest |Δlogit| allowed, relative to the largest |logit| of the reference (float32 both)."""

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
)


@dataclasses.dataclass(frozen=True)
class StressVariant:
    """One checkpoint variant: a name and a function from the base config.json to the variant's.

    `applies(config)` is False where the variant means nothing for the base (no sliding
    layers, too few heads); the kit then skips it with the reason.
    """

    name: str
    description: str
    edit: Callable[[dict[str, Any]], None]
    applies: Callable[[Mapping[str, Any]], bool] = lambda config: True
    since_api: int = 1
    """The plugin API that brought the variant: the kit runs it on plugins declaring that
    API or a later one, so a plugin's own suite does not turn red when the core is upgraded."""


def _heads(c: Mapping[str, Any]) -> int:
    return int(c["num_attention_heads"])


def _head_dim(c: Mapping[str, Any]) -> int:
    return int(c.get("head_dim") or int(c["hidden_size"]) // _heads(c))


def _has_sliding(c: Mapping[str, Any]) -> bool:
    return "sliding_attention" in (c.get("layer_types") or ())


def _set_layers(c: dict[str, Any], n: int) -> None:
    types = c.get("layer_types")
    if types:
        c["layer_types"] = [types[i % len(types)] for i in range(n)]
        if _has_sliding({"layer_types": types}) and "full_attention" in types:
            # keep at least one global layer, as every sliding-window family has
            c["layer_types"][-1] = "full_attention"
    c["num_hidden_layers"] = n


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda c: c.update(fields)


def _rope_dicts(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The RoPE parameter dicts a scaling applies to: the global layers' where they are
    keyed by layer type (Gemma3 scales only those), else the one dict (made in the vintage
    the config has: `rope_parameters`, or `rope_scaling` beside `rope_theta`)."""
    params = c.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get("full_attention"), dict):
        return [params["full_attention"]]
    if isinstance(params, dict):
        return [params]
    scaling = c.setdefault("rope_scaling", {})
    return [scaling]


def _rope(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(c: dict[str, Any]) -> None:
        for d in _rope_dicts(c):
            for key in ("factor", "low_freq_factor", "high_freq_factor", "short_factor", "long_factor",
                        "attention_factor", "beta_fast", "beta_slow", "original_max_position_embeddings"):  # fmt: skip
                d.pop(key, None)
            d.update(fields)
            d.pop("type", None)

    return edit


def _longrope(c: dict[str, Any]) -> None:
    half = int(_head_dim(c) * float(c.get("partial_rotary_factor") or 1.0)) // 2
    _rope(
        rope_type="longrope",
        short_factor=[1.0 + 0.25 * i for i in range(half)],
        long_factor=[2.0 + 0.5 * i for i in range(half)],
        original_max_position_embeddings=KV_CACHE_LEN,
    )(c)
    c["max_position_embeddings"] = 4 * KV_CACHE_LEN  # factor 4: transformers' attention scaling applies


def _no_sliding(c: Mapping[str, Any]) -> bool:
    """No windows yet, and only attention layers to put them on (not a hybrid's convolutions)."""
    return not _has_sliding(c) and set(c.get("layer_types") or ()) <= {"full_attention"}


def _window_every_layer(c: dict[str, Any]) -> None:
    c["sliding_window"] = WINDOW
    if "use_sliding_window" in c:  # Qwen2/Qwen3: windows from max_window_layers on
        c.update(use_sliding_window=True, max_window_layers=0)
    if c.get("layer_types"):
        c["layer_types"] = ["sliding_attention"] * int(c["num_hidden_layers"])


def _partial_rotary(c: Mapping[str, Any]) -> bool:
    """Only architectures whose attention rotates part of the head (Phi-3 and the like)
    accept the field; others would ignore or break on it."""
    params = c.get("rope_parameters")
    return "partial_rotary_factor" in c or (isinstance(params, dict) and "partial_rotary_factor" in params)


def _set_partial(c: dict[str, Any]) -> None:
    c["partial_rotary_factor"] = 0.5
    params = c.get("rope_parameters")
    if isinstance(params, dict):
        params["partial_rotary_factor"] = 0.5


VARIANTS: tuple[StressVariant, ...] = (
    StressVariant("perturbed", "the base config, every parameter re-drawn", lambda c: None),
    StressVariant("kv_heads_1", "one KV head (multi-query)", _set(num_key_value_heads=1)),
    StressVariant(
        "kv_heads_2",
        "two KV heads (grouped-query)",
        _set(num_key_value_heads=2),
        lambda c: _heads(c) % 2 == 0 and _heads(c) > 2,
    ),
    StressVariant(
        "kv_heads_all", "as many KV heads as heads (multi-head)", lambda c: c.update(num_key_value_heads=_heads(c))
    ),
    StressVariant(
        "head_dim",
        "head_dim different from hidden_size / num_attention_heads",
        lambda c: c.update(head_dim=_head_dim(c) + 8),
    ),
    StressVariant("tied", "LM head tied to the embedding", _set(tie_word_embeddings=True)),
    StressVariant("untied", "an LM head of its own", _set(tie_word_embeddings=False)),
    StressVariant("odd_layers", "three layers", lambda c: _set_layers(c, 3)),
    StressVariant(
        "window_shorter_than_prompt",
        f"a sliding window of {WINDOW} tokens, shorter than the {PROMPT_TOKENS}-token prompt",
        _set(sliding_window=WINDOW),
        _has_sliding,
    ),
    StressVariant(
        "attention_bias",
        "attention_bias: true (biases on the attention projections)",
        _set(attention_bias=True),
        lambda c: "attention_bias" in c,
    ),
    StressVariant(
        "mlp_bias", "mlp_bias: true (biases on the MLP projections)", _set(mlp_bias=True), lambda c: "mlp_bias" in c
    ),
    StressVariant(
        "window_every_layer",
        f"sliding_window {WINDOW} with no layer_types (windows wherever the architecture applies them)",
        _window_every_layer,
        _no_sliding,
        since_api=2,
    ),
    StressVariant("rope_linear", "linear RoPE scaling, factor 4", _rope(rope_type="linear", factor=4.0), since_api=2),
    StressVariant(
        "rope_llama3",
        "Llama 3.1 RoPE scaling (factor 8, original context 16, so every band is exercised)",
        _rope(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
        since_api=2,
    ),
    StressVariant(
        "rope_yarn",
        "YaRN RoPE scaling, factor 4 over an original context of 16",
        _rope(rope_type="yarn", factor=4.0, original_max_position_embeddings=16),
        since_api=2,
    ),
    StressVariant(
        "rope_longrope",
        f"LongRoPE (Phi-3) with short and long factors, original context {KV_CACHE_LEN}, factor 4",
        _longrope,
        since_api=2,
    ),
    StressVariant(
        "partial_rotary",
        "partial_rotary_factor 0.5 (half the head rotated)",
        _set_partial,
        _partial_rotary,
        since_api=2,
    ),
)
VARIANT_NAMES: tuple[str, ...] = tuple(v.name for v in VARIANTS)


def variant_named(name: str) -> StressVariant:
    """The variant called `name` (one of VARIANT_NAMES)."""
    for v in VARIANTS:
        if v.name == name:
            return v
    raise KeyError(name)


def _redraw(model: Any, seed: int) -> None:
    """Every parameter at random, with the spread of a trained model rather than of an init.

    Norm scales uniform in [0.2, 2.0] (far from 1, and for zero-centred norms far from 0);
    biases N(0, 0.5); embeddings N(0, 1); other matrices N(0, 1/fan_in).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name.lower():
                p.copy_(0.2 + 1.8 * torch.rand(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "embed" in name.lower():
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[-1] ** -0.5)


class NotApplicable(Exception):
    """transformers itself refuses the variant's config for this architecture: nothing to compare."""


def _fit_rope_factors(c: dict[str, Any]) -> None:
    """Resize LongRoPE's per-frequency factors after an edit changed the rotated width."""
    params = c.get("rope_parameters") if isinstance(c.get("rope_parameters"), dict) else c.get("rope_scaling")
    if not isinstance(params, dict) or not any(
        isinstance(params.get(k), list) for k in ("short_factor", "long_factor")
    ):
        return
    partial = params.get("partial_rotary_factor", c.get("partial_rotary_factor")) or 1.0
    half = int(_head_dim(c) * float(partial)) // 2
    for d in [params]:
        for key in ("short_factor", "long_factor"):
            values = d.get(key)
            if isinstance(values, list) and values and len(values) != half:
                d[key] = [values[i % len(values)] for i in range(half)]


def _model_class(config: Mapping[str, Any]) -> Any:
    """transformers' class for a config: the declared architecture where the config holds its
    text model under `text_config` (Gemma4ForConditionalGeneration), else the causal LM.
    Only transformers' own registered classes: no code from a checkpoint is run."""
    import transformers

    architectures = config.get("architectures") or []
    if isinstance(config.get("text_config"), dict) and architectures and hasattr(transformers, architectures[0]):
        return getattr(transformers, architectures[0])
    return transformers.AutoModelForCausalLM


def make_variant(base: Path, variant: StressVariant, dest: Path, seed: int = 0) -> Path:
    """Write the variant of checkpoint `base` into `dest` and return `dest`.

    The model is built by transformers from the edited config.json (its own registered
    classes only: no code from the checkpoint is run), every parameter re-drawn, and
    saved as float32 safetensors beside the base's tokenizer files. A multimodal config
    has its `text_config` edited (the towers beside it are kept as they are). Raises
    NotApplicable when transformers refuses the edited config for the architecture.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    text = config["text_config"] if isinstance(config.get("text_config"), dict) else config
    variant.edit(text)
    _fit_rope_factors(text)
    config["dtype"] = "float32"
    config.pop("torch_dtype", None)
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copyfile(base / name, dest / name)
    (dest / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    try:
        hf_config = AutoConfig.from_pretrained(dest, trust_remote_code=False)
    except Exception as exc:
        raise NotApplicable(f"transformers refuses this variant of {base.name}: {exc}".splitlines()[0]) from exc
    torch.manual_seed(seed)
    model_class = _model_class(config)
    try:
        if model_class is AutoModelForCausalLM:
            model = model_class.from_config(hf_config, dtype=torch.float32, trust_remote_code=False)
        else:
            model = model_class._from_config(hf_config, dtype=torch.float32)
    except (ValueError, TypeError) as exc:
        raise NotApplicable(f"transformers refuses this variant of {base.name}: {exc}".splitlines()[0]) from exc
    _redraw(model, seed)
    model.save_pretrained(dest, safe_serialization=True)
    return dest


@dataclasses.dataclass
class Comparison:
    """The plugin's logits against transformers' on one variant."""

    max_abs_diff: float
    max_abs_ref: float
    argmax_agree: float
    """Share of positions whose top token is the same."""
    reference_error: float = 0.0
    """How far transformers' own float32 logits are from its float64 ones (max |Δ|)."""

    @property
    def allowed(self) -> float:
        """TOLERANCE relative to the largest logit — or, where transformers' own float32
        computation is further than that from its float64 one (Qwen3.5's chunked linear
        attention: 3.5e-5 relative on the perturbed variant), that far: a bundle cannot be
        held closer to transformers than transformers is to itself."""
        return max(TOLERANCE * max(1.0, self.max_abs_ref), self.reference_error)

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.allowed and self.argmax_agree == 1.0

    def describe(self) -> str:
        return (
            f"max |Δlogit| {self.max_abs_diff:.3g} (largest logit {self.max_abs_ref:.3g}, "
            f"allowed {self.allowed:.3g}), top-1 agreement {self.argmax_agree:.1%}"
        )


def prompt_ids(vocab_size: int, seed: int = 0) -> list[int]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [int(i) for i in torch.randint(0, vocab_size, (PROMPT_TOKENS,), generator=gen)]


def litert_torch_logits(model: Any, ids: list[int]) -> Any:
    """Logits of a litert-torch decoder for `ids` from position 0, with a causal mask as input."""
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils

    n = len(ids)
    kv = kv_utils.KVCache.from_model_config(KV_CACHE_LEN, model.config)
    mask = torch.triu(torch.full((n, KV_CACHE_LEN), float("-inf")), diagonal=1)[None, None]
    with torch.no_grad():
        out = model(torch.tensor([ids], dtype=torch.int), torch.arange(n, dtype=torch.int), kv, mask=mask)
    return out["logits"][0].float()


def reference_logits(path: Path, ids: list[int], double: bool = False) -> Any:
    """transformers' logits for the checkpoint at `path` (float32, or float64 with `double`;
    eager attention)."""
    import torch

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    dtype = torch.float64 if double else torch.float32
    model = _model_class(config).from_pretrained(
        path, dtype=dtype, attn_implementation="eager", trust_remote_code=False
    )
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return logits if double else logits.float()


def _comparison(ours: Any, ref: Any, path: Path, ids: list[int]) -> Comparison:
    """`ours` against transformers' float32 `ref`, with how far `ref` itself is from float64."""
    if ours.shape != ref.shape:
        raise LitertError(f"the bundle's logits have shape {tuple(ours.shape)}, transformers' {tuple(ref.shape)}")
    return Comparison(
        max_abs_diff=float((ours - ref).abs().max()),
        max_abs_ref=float(ref.abs().max()),
        argmax_agree=float((ours.argmax(-1) == ref.argmax(-1)).float().mean()),
        reference_error=float((ref.double() - reference_logits(path, ids, double=True)).abs().max()),
    )


def build(plugin: str, path: Path) -> Any:
    """Plan and build the checkpoint at `path` through the installed plugin `plugin`, as
    `litert convert` does (claim, every planning hook, build_model), without exporting.

    Raises LitertError where the plugin (or the core's checks) refuse the checkpoint.
    """
    from litert.checkpoint import load_checkpoint
    from litert.convert import ConvertOptions, plan_conversion
    from litert.plugins import get_plugins

    plugins = get_plugins()
    ckpt = load_checkpoint(path)
    options = ConvertOptions(family=plugin, prefill_lengths=(8,), kv_cache_max_len=KV_CACHE_LEN, quantize="none")
    plan = plan_conversion(plugins, ckpt, options)  # the plugin's own settings, with a small export
    return plugins.call(plan.plugin, "build_model", claim=plan.claim, settings=plan.settings)


def compare(plugin: str, path: Path) -> Comparison:
    """Build `path` through `plugin` and compare its logits with transformers'."""
    from litert import hf

    config = hf.text_config(json.loads((path / "config.json").read_text(encoding="utf-8")))
    ids = prompt_ids(int(config["vocab_size"]))
    ours = litert_torch_logits(build(plugin, path), ids)
    return _comparison(ours, reference_logits(path, ids), path, ids)


def compare_native(plugin: str, path: Path, workdir: Path) -> Comparison:
    """Convert `path` through `plugin` with `--quantize none` (a family built by litert-torch's
    transformers-native exporter: the exported graph is the only model code there is) and
    compare the bundle's teacher-forced logits, its .tflite driven token by token, with
    transformers'. About half a minute per variant (a real export), against a second for
    `compare`: the kit runs these when LITERT_KIT_NATIVE_STRESS=1 (`nox -s stress`).

    Raises LitertError where the plugin (or the core's checks) refuse the checkpoint.
    """
    import os

    from litert import hf
    from litert.convert import ConvertOptions, convert
    from litert.tflite_runner import BundleModel

    config = hf.text_config(json.loads((path / "config.json").read_text(encoding="utf-8")))
    ids = prompt_ids(int(config["vocab_size"]))
    saved = os.environ.get("LITERT_HOME")
    os.environ["LITERT_HOME"] = str(workdir / "home")
    try:
        done = convert(
            str(path),
            ConvertOptions(
                family=plugin,
                output=workdir / "variant.litertlm",
                quantize="none",
                prefill_lengths=(8,),
                kv_cache_max_len=KV_CACHE_LEN,
                verify=False,
            ),
        )
    finally:
        if saved is None:
            os.environ.pop("LITERT_HOME", None)
        else:
            os.environ["LITERT_HOME"] = saved
    import torch

    with BundleModel(done.path, workdir=workdir) as bundle:
        ours = torch.from_numpy(bundle.next_token_logits(ids))
    return _comparison(ours, reference_logits(path, ids), path, ids)
