"""Parity of a bundle against the transformers original, measured.

The reference is the checkpoint run in transformers at fp32. Against it we measure
the bundle two ways, on a fixed set of prompts rendered with the model's own chat
template (one longer than the largest prefill length, and than any sliding window):

- teacher-forced, through the bundle's own .tflite (prefill and decode signatures, KV
  cache carried between calls as the runtime does): top-1 agreement of next-token
  predictions, KL divergence and max |Δ logit| between the two distributions, on the
  bundle's own greedy continuation (the reference reads it in one forward pass);
- free-running, through the LiteRT-LM runtime (the bundle's tokenizer, chat template,
  stop tokens): the number of greedy tokens identical to transformers' `generate`
  before the first divergence.

Nothing here is family-specific: prompts are rendered by the checkpoint's template,
the window length is read from config.json when there is one.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from litert.errors import LitertError
from litert.tokenizer import BundleTokenizer
from litert.types import Checkpoint


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """What a bundle must reach to pass, per quantization recipe."""

    top1: float
    """Minimum teacher-forced top-1 agreement over all positions (0..1)."""
    kl: float | None
    """Maximum mean KL(reference || bundle) in nats, or None when not checked."""
    greedy: int
    """Minimum greedy tokens identical before the first divergence (an answer that ends
    sooner must match whole)."""
    greedy_share: float = 1.0
    """The share of prompts that must meet `greedy`. A quantized bundle of a real model
    meets near-ties where one token flips and the answers part (SmolLM2-135M-Instruct at
    dynamic_int8: top-1 97.5 %, yet one prompt of five diverged at its first token), so
    quantized recipes ask it of half the prompts; `none` and `fp16` of every prompt."""
    margin: float = 0.0
    """A near-tie, in the reference's own log-probabilities: a position where the bundle picks
    another token than the reference does counts against it only when the reference rates
    that token more than `margin` nats below its own choice; a free-running answer may part
    from the reference's at such a position. The recipe's numerical noise sets it: a tenth of
    the KL threshold's square root (the typical log-probability error at that KL), so a
    bundle may only lose a tie its own noise can explain (none: 0.001, int8: 0.022)."""


# `none`: the bundle must compute what transformers computes. The quantized recipes: from
# measurements on a real trained model (SmolLM2-135M-Instruct, docs/verify.md) and the tiny
# models of every family, with margin.
def _margin(kl: float) -> float:
    return round(0.1 * kl**0.5, 4)


THRESHOLDS: dict[str, Thresholds] = {
    "none": Thresholds(top1=1.0, kl=1e-4, greedy=32, margin=_margin(1e-4)),
    "fp16": Thresholds(top1=0.99, kl=0.01, greedy=16, margin=_margin(0.01)),
    "dynamic_int8": Thresholds(top1=0.95, kl=0.05, greedy=8, greedy_share=0.5, margin=_margin(0.05)),
    "weight_only_int8": Thresholds(top1=0.95, kl=0.05, greedy=8, greedy_share=0.5, margin=_margin(0.05)),
    "dynamic_int4_block32": Thresholds(top1=0.60, kl=0.6, greedy=2, greedy_share=0.5, margin=_margin(0.6)),
    "dynamic_int4_block128": Thresholds(top1=0.60, kl=0.6, greedy=2, greedy_share=0.5, margin=_margin(0.6)),
    "dynamic_int4_mlp": Thresholds(top1=0.60, kl=0.6, greedy=2, greedy_share=0.5, margin=_margin(0.6)),
    "dynamic_int4_int8_head": Thresholds(top1=0.60, kl=0.6, greedy=2, greedy_share=0.5, margin=_margin(0.6)),
}

QUESTIONS = [
    ("single", [{"role": "user", "content": "What is the capital of France?"}]),
    (
        "system",
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of Germany?"},
        ],
    ),
    (
        "turns",
        [
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hello! How can I help you today?"},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
    ),
    ("open", [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]),
]
LONG_TEXT = (
    "The lighthouse stood on a rock at the edge of the sea. Every night its keeper climbed the "
    "stairs, trimmed the wick and watched the ships pass. Storms came in autumn, and the waves "
    "rose over the rocks, but the light never failed. "
)


@dataclasses.dataclass
class PromptReport:
    name: str
    prompt_tokens: int
    positions: int
    top1: float
    kl_mean: float
    max_abs_logit_diff: float
    greedy_identical: int
    greedy_reference: int
    greedy_complete: bool
    top1_margin: float = 1.0
    """Top-1 agreement counting near-ties (Thresholds.margin) as agreement."""
    parted_at_near_tie: bool = False
    """The free-running answer parted from the reference's where the reference's own top two
    were within the margin: not held against the bundle."""
    runtime_follows: int = -1
    """Tokens of the runtime's answer identical to the bundle's own greedy answer (its .tflite
    on the compiled-model API, which the teacher-forced figures measure) before they part;
    -1 when not measured."""
    runtime_follows_whole: bool = True
    """The runtime's answer is the bundle's own greedy answer, whole: what the teacher-forced
    figures say of the .tflite, they say of what the user runs."""
    runtime_parting_margin: float | None = None
    """Where the runtime parted from the bundle's own answer: how far below its own choice the
    .tflite rated the runtime's token, in log-probability. Beyond the recipe's margin the
    runtime computed something the graph does not (its engine, not the conversion)."""
    raw_follows_whole: bool | None = None
    """When the runtime's chat answer parted from the bundle's own beyond the margin: whether
    the same prompt, sent as the raw text transformers rendered, follows it whole (then the
    runtime renders the conversation differently) or not (then its engine computes
    differently). None when not asked."""


@dataclasses.dataclass
class ParityReport:
    bundle: str
    checkpoint: str
    quantize: str
    thresholds: Thresholds
    prompts: list[PromptReport]
    passed: bool = False
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def top1(self) -> float:
        total = sum(p.positions for p in self.prompts)
        return sum(p.top1 * p.positions for p in self.prompts) / total if total else 0.0

    @property
    def top1_margin(self) -> float:
        total = sum(p.positions for p in self.prompts)
        return sum(p.top1_margin * p.positions for p in self.prompts) / total if total else 0.0

    @property
    def kl(self) -> float:
        total = sum(p.positions for p in self.prompts)
        return sum(p.kl_mean * p.positions for p in self.prompts) / total if total else 0.0

    @property
    def max_abs_logit_diff(self) -> float:
        return max((p.max_abs_logit_diff for p in self.prompts), default=0.0)

    @property
    def greedy_min(self) -> int:
        return min((p.greedy_identical for p in self.prompts), default=0)

    @property
    def greedy_whole(self) -> int:
        return sum(p.greedy_complete for p in self.prompts)

    @property
    def runtime_follows_whole(self) -> int:
        """Prompts on which the runtime's answer is the bundle's own greedy answer, whole."""
        return sum(p.runtime_follows_whole for p in self.prompts)

    def runtime_partings(self) -> list[PromptReport]:
        """Prompts where the runtime's answer parted from the bundle's own greedy answer where
        the .tflite was not near a tie: the runtime computed something else than the graph."""
        margin = self.thresholds.margin
        return [p for p in self.prompts if _parted_beyond(margin, p.runtime_follows_whole, p.runtime_parting_margin)]

    def failure_error(self, where: Path | str, hint: str) -> LitertError:
        """The one line for a failed report: blames the model only when the model is to blame.

        When the logits agree on the same tokens (top-1 and KL within the thresholds) and
        only the free-running answers part, the bundle computes what the original computes,
        and the runtime's own answers say what else differs: the runtime's engine (its answer
        parts from the .tflite's own even on the raw prompt), the prompt as it renders the
        conversation (the raw prompt follows), or neither (the runtime follows the .tflite:
        the recipe's noise moved a close choice)."""
        t = self.thresholds
        failures = "; ".join(self.failures)
        if not (self.prompts and self.top1_margin >= t.top1 and (t.kl is None or self.kl <= t.kl)):
            return LitertError(
                f"the bundle does not compute what the original computes ({failures}); "
                f"it is kept at {where}, marked as failed",
                hint,
            )
        parted = self.runtime_partings()
        if any(not p.raw_follows_whole for p in parted):
            return LitertError(
                f"the bundle's .tflite computes what the original computes on the same tokens, but LiteRT-LM's "
                f"answers part from the .tflite's own ({failures}): the runtime's engine computes something else "
                f"than the graph it runs; it is kept at {where}, marked as failed",
                "not a conversion error: report it to LiteRT-LM with the output of `litert verify --json`",
            )
        if parted:
            return LitertError(
                f"the bundle computes what the original computes on the same tokens, but its answers part from "
                f"transformers' ({failures}): the prompt as the runtime renders and tokenizes it "
                f"differs from transformers' (chat template or tokenizer); it is kept at {where}, marked as failed",
                "compare `litert inspect` (template, stop tokens) with the checkpoint's tokenizer_config.json",
            )
        return LitertError(
            f"the bundle computes what the original computes within the {self.quantize} recipe's noise, and the "
            f"runtime follows it, but its greedy answers part from transformers' ({failures}): the recipe moved "
            f"close choices; it is kept at {where}, marked as failed",
            "a less lossy --quantize recipe keeps more answers (docs/verify.md says what each keeps)",
        )

    def summary_line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        ties = f" ({self.top1_margin * 100:.1f}% counting near-ties)" if self.top1_margin != self.top1 else ""
        return (
            f"parity: top-1 {self.top1 * 100:.1f}%{ties}, KL {self.kl:.4f}, "
            f"max |Δlogit| {self.max_abs_logit_diff:.3f}, "
            f"greedy answers identical {self.greedy_whole}/{len(self.prompts)} "
            f"(shortest identical run {self.greedy_min} tokens), runtime = the .tflite's own answers "
            f"{self.runtime_follows_whole}/{len(self.prompts)} ({self.quantize}) — {verdict}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "checkpoint": self.checkpoint,
            "quantize": self.quantize,
            "passed": self.passed,
            "failures": self.failures,
            "top1": round(self.top1, 6),
            "top1_margin": round(self.top1_margin, 6),
            "kl": round(self.kl, 6),
            "max_abs_logit_diff": round(self.max_abs_logit_diff, 6),
            "greedy_min": self.greedy_min,
            "greedy_whole": self.greedy_whole,
            "runtime_follows_whole": self.runtime_follows_whole,
            "thresholds": dataclasses.asdict(self.thresholds),
            "prompts": [dataclasses.asdict(p) for p in self.prompts],
        }

    def table(self) -> str:
        rows = [("prompt", "tokens", "positions", "top-1", "KL", "max|Δ|", "greedy identical", "runtime = .tflite")]
        for p in self.prompts:
            greedy = f"{p.greedy_identical}/{p.greedy_reference}" + (" (whole answer)" if p.greedy_complete else "")
            follows = "whole answer" if p.runtime_follows_whole else f"{p.runtime_follows} tokens"
            rows.append(
                (p.name, str(p.prompt_tokens), str(p.positions), f"{p.top1 * 100:.1f}%", f"{p.kl_mean:.5f}",
                 f"{p.max_abs_logit_diff:.4f}", greedy, follows)
            )  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        t = self.thresholds
        lines.append(
            f"thresholds ({self.quantize}): top-1 ≥ {t.top1 * 100:.0f}%"
            + (f", KL ≤ {t.kl}" if t.kl is not None else "")
            + f", greedy ≥ {t.greedy} identical tokens"
            + (" on every prompt" if t.greedy_share >= 1 else f" on {t.greedy_share:.0%} of the prompts")
        )
        lines.extend(f"failed: {f}" for f in self.failures)
        lines.append(self.summary_line())
        return "\n".join(lines)


def _long_conversation(tokenizer: Any, min_tokens: int) -> list[dict[str, str]]:
    text = LONG_TEXT
    while True:
        messages = [{"role": "user", "content": text + "What does the keeper do every night?"}]
        if len(_render(tokenizer, messages)) > min_tokens:
            return messages
        text += LONG_TEXT


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(ids)


RAW_TEXTS = [
    ("capital", "The capital of France is"),
    ("count", "One, two, three, four,"),
    ("story", "Once upon a time, a lighthouse keeper"),
]


def raw_prompt_set(
    tokenizer: Any, config: dict[str, Any], settings: dict[str, Any], tokens: int, quick: bool, start: list[int]
):
    """(name, text, ids) for a base model without a chat template: plain text, with the start
    token (BOS) the runtime writes before it when the tokenizer does not add it itself."""
    kv = int(settings["kv_cache_max_len"])
    target = max(max(settings["prefill_lengths"]), int(config.get("sliding_window") or 0)) + 8
    texts = list(RAW_TEXTS[:2] if quick else RAW_TEXTS)
    long_text = LONG_TEXT
    while len(tokenizer(long_text)["input_ids"]) <= target and len(long_text) < 100_000:
        long_text += LONG_TEXT
    texts.append(("long", long_text))
    prompts = []
    for name, text in texts:
        ids = list(tokenizer(text)["input_ids"])
        if start and ids[: len(start)] != start:
            ids = start + ids
        prompts.append((name, text, ids))
    return [p for p in prompts if len(p[2]) + tokens + 2 <= kv]


def prompt_set(
    tokenizer: Any, config: dict[str, Any], settings: dict[str, Any], tokens: int, quick: bool, start: list[int] = ()
):
    """(name, messages, ids) for each prompt that fits the bundle's context; (name, text, ids)
    when the checkpoint has no chat template (a base model)."""
    if not getattr(tokenizer, "chat_template", None):
        return raw_prompt_set(tokenizer, config, settings, tokens, quick, list(start))
    kv = int(settings["kv_cache_max_len"])
    longest = max(settings["prefill_lengths"])
    window = int(config.get("sliding_window") or 0)
    prompts = []
    for name, messages in QUESTIONS[:2] if quick else QUESTIONS:
        prompts.append((name, messages, _render(tokenizer, messages)))
    target = max(longest, window) + 8
    if target + tokens + 2 <= kv:
        messages = _long_conversation(tokenizer, target)
        ids = _render(tokenizer, messages)
        if len(ids) + tokens + 2 <= kv:
            prompts.append(("long", messages, ids))
    return [p for p in prompts if len(p[2]) + tokens + 2 <= kv]


STORED_DTYPES = {"BF16": "bfloat16", "F16": "float16"}


def load_reference(ckpt: Checkpoint, offload: Path | None = None) -> Any:
    """transformers' model of `ckpt` in float32, the reference verification measures against.

    With `offload` (an empty directory accelerate requires), the model is not loaded: each
    module's weights are read from the checkpoint's own safetensors files and cast when it
    runs, and dropped after (transformers' `device_map` "disk" with accelerate; nothing is
    written there for safetensors checkpoints). The same logits to the bit, at the memory of
    the largest module — for models whose float32 copy does not fit (`memory.reference_in_memory`).

    Loaded as stored and cast afterwards when every weight is stored in one 16-bit type:
    transformers' own float32 load holds the 16-bit tensors and their float32 casts at once
    (Qwen3-0.6B: 3.84 GB at its peak against 3.11 GB this way), and the result is the same
    model to the bit — every parameter, every buffer, the logits (tests/test_verify.py, on
    each family's tiny checkpoint stored in bf16 and in fp16). Otherwise float32 directly.
    """
    import torch
    from transformers import AutoModelForCausalLM

    attention = reference_attention(dict(ckpt.config))
    if offload is not None:
        model = AutoModelForCausalLM.from_pretrained(
            ckpt.path,
            dtype=torch.float32,
            device_map={"": "disk"},
            offload_folder=str(offload),
            trust_remote_code=False,
            attn_implementation=attention,
        )
        return model.eval()
    stored = _stored_float_dtype(ckpt)
    dtype = getattr(torch, STORED_DTYPES[stored]) if stored in STORED_DTYPES else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        ckpt.path, dtype=dtype, trust_remote_code=False, attn_implementation=attention
    )
    return model.float().eval()


def reference_attention(config: dict[str, Any]) -> str:
    """transformers' attention for the reference: PyTorch's fused `sdpa`, or `eager` where
    the attention logits are soft-capped (sdpa refuses a soft cap).

    Why: the reference's forward on the long prompt is most of verification's time, and
    eager attention materializes every head's prompt × prompt scores. Measured on Qwen3-0.6B
    (float32, two cores): the 1,066-token prompt 6.5 s → 3.7 s, a decode step 137 → 122 ms,
    the logits within 3e-6 of eager's (tests/test_verify.py compares both on every family's
    tiny checkpoint).
    """
    for part in (config, config.get("text_config") or {}):
        if isinstance(part, dict) and part.get("attn_logit_softcapping"):
            return "eager"
    return "sdpa"


def _stored_float_dtype(ckpt: Checkpoint) -> str | None:
    """The one safetensors dtype of every floating-point tensor of `ckpt`, or None."""
    from litert.errors import LitertError
    from litert.weights import read_header, safetensors_files

    found = set()
    try:
        files = safetensors_files(ckpt)
    except LitertError:  # pickle weights (the conversion was allowed them): float32 as transformers loads them
        return None
    for path in files:
        if path.suffix != ".safetensors":
            return None
        found |= {
            info["dtype"] for key, info in read_header(path).items() if key != "__metadata__" and "F" in info["dtype"]
        }
    return found.pop() if len(found) == 1 else None


CROP_CACHE = True
"""Cut the reference's cache back at a parting (False: start again from a copy of the
prompt's cache, for caches that cannot be cut; tests/test_verify.py runs both)."""


@dataclasses.dataclass
class _Reference:
    """What the reference computed for one prompt: its greedy continuation and the logits that
    chose each token, and its logits at each position of the bundle's greedy continuation."""

    greedy: list[int]
    greedy_logits: Any
    path_logits: Any


def _reference_along(model: Any, ids: list[int], path: list[int], tokens: int, own: int | None = None) -> _Reference:
    """The reference's logits at each position of `path` (the bundle's greedy continuation of
    `ids`, `tokens` long) in one forward pass, and its own greedy continuation: `tokens` long,
    or with `own` at least `own` tokens and no decode step beyond what the path gave (where
    each decode step reads the whole checkpoint again: the answer up to its parting from
    the bundle's, the token it parts with included).

    Why one pass: the reference's decode steps read every float32 weight once a token (2.4 GB
    for Qwen3-0.6B, 122 ms); teacher-forced along the bundle's path, the prompt and the
    whole continuation are two forward passes. Its greedy continuation is that path for as
    long as its own choices agree with it; from the first position where they do not, it is
    decoded token by token as before, the cache cut back to the parting (transformers'
    `crop`, as its assisted decoding does; a copy of the prompt's cache where a cache
    cannot be cut).
    """
    import copy
    import inspect

    import torch

    # Only the last position's logits are used: without `logits_to_keep` the prompt's forward
    # also makes a (prompt × vocabulary) float32 tensor, 627 MB for Qwen3-0.6B's 1,032-token
    # prompt — the largest thing verification held.
    last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True, **last)
        # Copies, not views: a view would keep the prompt's whole logits tensor alive.
        cache, along = out.cache, out.logits[0, -1:].float().clone()
        del out
        path = path[:tokens]
        prompt_cache = None
        if len(path) > 1:
            if _can_crop(model, cache):
                cache.activate_past_recording()  # sliding windows and convolution states can go back
            else:
                prompt_cache = copy.deepcopy(cache)
            out = model(torch.tensor([path[:-1]]), cache=cache, use_cache=True)
            along = torch.cat([along, out.logits[0].float()])
            del out
        choices = [int(t) for t in along.argmax(-1)]
        agreed = next((i for i, (a, b) in enumerate(zip(choices, path, strict=False)) if a != b), len(path))
        greedy = path[:agreed] + choices[agreed : agreed + 1]
        logits = list(along[: len(greedy)])
        fed = greedy[-1:]
        if len(greedy) < tokens and len(path) > 1:  # the cache read the path past the parting
            if prompt_cache is None:
                if len(path) - 1 > agreed:
                    cache.crop(agreed - (len(path) - 1))
            else:
                fed, cache, prompt_cache = greedy, prompt_cache, None
        own = tokens if own is None else min(own, tokens)
        while len(greedy) < own:
            out = model(torch.tensor([fed]), cache=cache, use_cache=True)
            cache = out.cache
            logits.append(out.logits[0, -1].float().clone())
            greedy.append(int(logits[-1].argmax()))
            fed = greedy[-1:]
    kept = max(own, min(len(greedy), tokens))
    return _Reference(greedy=greedy[:kept], greedy_logits=torch.stack(logits[:kept]), path_logits=along)


def _can_crop(model: Any, cache: Any) -> bool:
    """Whether the reference's cache can be cut back at a parting exactly: transformers' `crop`
    restores sliding windows and convolution states, but not a linear attention's recurrent
    state (Qwen3.5's logits after a parting were off by up to 0.008; tests/test_verify.py)."""
    layer_types = getattr(model.config.get_text_config(), "layer_types", None) or ()
    return (
        CROP_CACHE
        and hasattr(cache, "crop")
        and hasattr(cache, "activate_past_recording")
        and "linear_attention" not in layer_types
    )


def _runtime_answer(engine: Any, messages: list[dict[str, str]] | str, tokens: int, name: str) -> str:
    """The runtime's greedy answer; its failure in one line naming the prompt."""
    import litert_lm

    from litert.runtime import continue_raw

    greedy = litert_lm.SamplerConfig(top_k=1, temperature=1.0, top_p=1.0, seed=0)
    try:
        if isinstance(messages, str):  # a base model: the text as it is, no turn markers
            return "".join(continue_raw(engine, greedy, messages, tokens))

        *history, last = messages
        system = None
        if history and history[0]["role"] == "system":
            system, history = history[0]["content"], history[1:]
        conversation = engine.create_conversation(
            messages=history or None,
            system_message=system,
            sampler_config=greedy,
            max_output_tokens=tokens,
        )
        try:  # streamed: a failure then carries the runtime's own words
            return "".join(
                getattr(part, "text", "") or ""
                for message in conversation.send_message_async(last["content"])
                for part in message.contents
            )
        finally:
            conversation.close()
    except RuntimeError as exc:
        raise LitertError(
            f"the runtime failed on the verification prompt {name!r}: {exc}",
            "a model that chooses a token its tokenizer cannot decode (an id beyond the tokenizer, as random "
            "weights may) stops the runtime too; the runtime's log is in $LITERT_HOME/logs",
        ) from exc


def _parted_beyond(margin: float, whole: bool, gap: float | None) -> bool:
    """The runtime's answer parted from the .tflite's own where the .tflite preferred its own
    token by more than `margin`: not a tie the two engines' summation order can explain."""
    return not whole and gap is not None and gap > margin


def _until_stop(tokens: list[int], stop_ids: set[int]) -> list[int]:
    return tokens[: next((i for i, t in enumerate(tokens) if t in stop_ids), len(tokens))]


def _comparable(text: str) -> str:
    """Text as two decoders agree on it: a character neither can show (U+FFFD for an incomplete
    UTF-8 sequence, a control character) is one placeholder, whichever each chose to print."""
    import unicodedata

    return "".join(
        "\ufffd" if c == "\ufffd" or (unicodedata.category(c) == "Cc" and c not in "\n\t") else c for c in text
    )


def _parting(
    tokenizer: BundleTokenizer, tokens: list[int], answer: str, logp: Any, stop_ids: set[int]
) -> tuple[int, bool, float | None]:
    """How many of `tokens` the runtime's `answer` (text) repeats before it parts, whether it
    repeats them whole, and at the parting how far below its own choice `logp` (the
    log-probabilities behind `tokens`) rates the runtime's next token (or its stop tokens,
    when the runtime's answer ended there).

    Compared as text, prefix by prefix, decoded by the tokenizer the bundle carries (the
    runtime's): the runtime gives text, and text tokenized again is not the tokens that made
    it (a model that emits single bytes makes pieces no tokenizer would), so counting
    re-tokenized ids blamed models for a round trip through their tokenizer."""
    target = _comparable(answer)
    same, matched = 0, 0
    for i in range(1, len(tokens) + 1):
        text = _comparable(tokenizer.decode(tokens[:i]))
        if target.startswith(text):
            same, matched = i, len(text)
        elif not target.startswith(text.rstrip("\ufffd")):  # else: a character still incomplete
            break
    if same == len(tokens):
        whole = matched == len(target)
        if whole or same >= len(logp):
            return same, whole, None
    step = logp[same]
    rest = answer[matched:]  # _comparable keeps every character's place
    following = tokenizer.encode(rest) if rest else []
    if following:
        return same, False, float(step.max() - step[following[0]])
    stops = [t for t in stop_ids if t < step.shape[-1]]
    return same, False, float(step.max() - step[stops].max()) if stops else None


def verify(
    checkpoint_dir: Path,
    bundle_path: Path,
    tokens: int = 32,
    quick: bool = False,
    workdir: Path | None = None,
    tflite: Path | None = None,
) -> ParityReport:
    """Measure `bundle_path` against the transformers model in `checkpoint_dir`; the bundle's
    packed weights go to a temporary directory in `workdir` (default: TMPDIR) meanwhile.
    `tflite`: the bundle's prefill/decode model as a file of its own (the conversion's), run
    from there rather than copied out of the bundle."""

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from litert.bundle import read_bundle
    from litert.checkpoint import load_checkpoint
    from litert.memory import reference_in_memory, release_freed_memory
    from litert.runtime import open_engine
    from litert.tflite_runner import BundleModel
    from litert.tokenizer import bundle_tokenizer

    info = read_bundle(bundle_path)
    summary = info.summary
    settings = summary.get("settings")
    if not settings:
        raise LitertError(f"{bundle_path} was not made by litert (no conversion summary)", "convert it with litert")
    ckpt = load_checkpoint(checkpoint_dir)
    made_from = summary.get("architecture")
    if made_from and made_from not in ckpt.architectures:
        raise LitertError(
            f"{bundle_path} was made from a {made_from} checkpoint, and {checkpoint_dir} is "
            f"{', '.join(ckpt.architectures) or 'of no declared architecture'}",
            f"pass the checkpoint the bundle was converted from ({summary.get('source') or 'see litert models list'})",
        )
    quantize = settings["quantize"]
    thresholds = THRESHOLDS[quantize]
    try:
        tokenizer = AutoTokenizer.from_pretrained(ckpt.path, trust_remote_code=False)
    except Exception as exc:
        raise LitertError(f"transformers cannot load {checkpoint_dir}: {exc}", "pass the original checkpoint") from exc
    stop_ids = set(info.stop_token_ids)
    decoder = bundle_tokenizer(info)
    prompts = prompt_set(tokenizer, dict(ckpt.config), settings, tokens, quick, info.start_token_ids)

    # Three stages, one model in memory at a time (the .tflite as a compiled model, the
    # float reference, the runtime's engine): the peak is the largest of them, not their sum.
    # 1. The bundle's .tflite, greedy on its own: the logits behind each of its choices.
    forced = []
    with BundleModel(bundle_path, workdir=workdir, tflite=tflite) as bundle_model:
        for _, _, ids in prompts:
            bundle_model.reset()
            bundle_model.prefill(ids[:-1])
            rows, token = [], ids[-1]
            for _ in range(tokens):
                rows.append(bundle_model.step(token))
                token = int(rows[-1].argmax())
            forced.append(np.stack(rows))
    release_freed_memory()

    # 2. The reference, teacher-forced along the bundle's choices, and its own greedy answers.
    # A reference read from the checkpoint as it runs reads all of it again for every decode
    # step (80 s for Qwen3-14B): its own answer is taken up to its parting from the bundle's,
    # which is what the judgment counts while the runtime follows the bundle (it checks that).
    in_memory = reference_in_memory(ckpt)
    with tempfile.TemporaryDirectory(prefix="litert-offload-", dir=workdir) as offload:
        try:
            model = load_reference(ckpt, None if in_memory else Path(offload))
        except Exception as exc:
            raise LitertError(
                f"transformers cannot load {checkpoint_dir}: {exc}", "pass the original checkpoint"
            ) from exc
        try:
            references = [
                _reference_along(model, ids, [int(t) for t in ours.argmax(-1)], tokens, None if in_memory else 1)
                for (_, _, ids), ours in zip(prompts, forced, strict=True)
            ]
        except RuntimeError as exc:
            if in_memory:
                raise
            raise LitertError(
                f"transformers' {ckpt.architectures[0] if ckpt.architectures else 'model'} cannot be run with "
                f"its weights read from the checkpoint as it goes ({exc})",
                "verify on a machine where its float32 copy fits (LITERT_REFERENCE=memory loads it whole)",
            ) from exc
        del model
    release_freed_memory()

    # 3. Free-running through the runtime, as the user will run it; where its answer parts
    # from the bundle's own, the same prompt again as raw text tells rendering from engine.
    import litert_lm

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    engine = open_engine(bundle_path, int(info.llm.max_num_tokens))
    our_logps = [torch.log_softmax(torch.from_numpy(ours), -1) for ours in forced]
    answers, followed, raw_followed = [], [], []
    try:
        for (name, messages, ids), ours, logp in zip(prompts, forced, our_logps, strict=True):
            answers.append(_runtime_answer(engine, messages, tokens, name))
            own = (decoder, _until_stop([int(t) for t in ours.argmax(-1)], stop_ids))
            followed.append(_parting(*own, answers[-1], logp, stop_ids))
            _, whole, gap = followed[-1]
            raw = None
            if _parted_beyond(thresholds.margin, whole, gap):
                if isinstance(messages, str):  # a base model's prompt is raw text already
                    raw = False
                else:
                    start = list(info.start_token_ids)
                    text = decoder.decode(ids[len(start) :] if ids[: len(start)] == start else ids)
                    raw = _parting(*own, _runtime_answer(engine, text, tokens, name), logp, stop_ids)[1]
            raw_followed.append(raw)
    finally:
        engine.close()

    reports = []
    for (name, _, ids), found, ours, our_logp, answer, (follows, follows_whole, parting), raw in zip(
        prompts, references, forced, our_logps, answers, followed, raw_followed, strict=True
    ):
        ref_tokens, ref_logits = found.greedy, found.path_logits
        ours_t = torch.from_numpy(ours)
        ref_logp = torch.log_softmax(ref_logits, -1)
        kl = (ref_logp.exp() * (ref_logp - our_logp)).sum(-1)
        agree = (ours_t.argmax(-1) == ref_logits.argmax(-1)).float()
        # A near-tie: the reference itself rates the bundle's choice within the margin of its own.
        gap = ref_logp.max(-1).values - ref_logp.gather(-1, ours_t.argmax(-1, keepdim=True)).squeeze(-1)
        agree_margin = torch.maximum(agree, (gap <= thresholds.margin).float())
        greedy_logp = torch.log_softmax(found.greedy_logits, -1)  # where the runtime's answer may part
        # The runtime's answer (text) compared token by token with transformers' and with the
        # bundle's own greedy path; at a parting, how far below its own choice each model
        # rated the runtime's token.
        reference = _until_stop(ref_tokens, stop_ids)
        same, whole, ref_gap = _parting(decoder, reference, answer, greedy_logp, stop_ids)
        near_tie = ref_gap is not None and ref_gap <= thresholds.margin
        reports.append(
            PromptReport(
                name=name,
                prompt_tokens=len(ids),
                positions=len(ref_tokens),
                top1=float(agree.mean()),
                kl_mean=float(kl.clamp_min(0).mean()),
                max_abs_logit_diff=float((ours_t - ref_logits).abs().max()),
                greedy_identical=same,
                greedy_reference=len(reference),
                greedy_complete=whole,
                top1_margin=float(agree_margin.mean()),
                parted_at_near_tie=near_tie,
                runtime_follows=follows,
                runtime_follows_whole=follows_whole,
                runtime_parting_margin=parting,
                raw_follows_whole=raw,
            )
        )
    report = ParityReport(
        bundle=str(bundle_path),
        checkpoint=str(checkpoint_dir),
        quantize=quantize,
        thresholds=thresholds,
        prompts=reports,
    )
    judge(report)
    return report


def judge(report: ParityReport) -> None:
    """Apply the recipe's thresholds and record what failed."""
    t = report.thresholds
    failures = []
    if not report.prompts:
        failures.append("no prompt fits the bundle's context")
    if report.top1_margin < t.top1:
        failures.append(
            f"top-1 agreement {report.top1_margin * 100:.1f}% (near-ties within {t.margin} counted) "
            f"< {t.top1 * 100:.0f}%"
        )
    if t.kl is not None and report.kl > t.kl:
        failures.append(f"mean KL {report.kl:.4f} > {t.kl}")
    short = []
    for p in report.prompts:
        needed = min(t.greedy, p.greedy_reference)
        if p.parted_at_near_tie:
            continue  # parted where the reference itself was undecided: not the bundle's fault
        if p.greedy_identical < needed or (p.greedy_reference < t.greedy and not p.greedy_complete):
            short.append(
                f"prompt {p.name!r}: {p.greedy_identical} greedy tokens identical, "
                f"{'the whole answer' if p.greedy_reference < t.greedy else t.greedy} needed"
            )
    met = len(report.prompts) - len(short)
    if report.prompts and met < t.greedy_share * len(report.prompts):
        if t.greedy_share < 1:
            failures.append(f"greedy answers agree on {met} of {len(report.prompts)} prompts, fewer than half")
        failures.extend(short)
    for p in report.runtime_partings():  # what the teacher-forced figures measured is not what runs
        failures.append(
            f"prompt {p.name!r}: the runtime's answer parts from the bundle's own greedy answer after "
            f"{p.runtime_follows} tokens, where the .tflite prefers its own token by "
            f"{p.runtime_parting_margin:.3f} nats "
            + ("(the prompt as raw text follows it)" if p.raw_follows_whole else "(the prompt as raw text too)")
        )
    report.failures = failures
    report.passed = not failures
