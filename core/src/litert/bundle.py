"""The .litertlm bundle: written atomically with litert_lm_builder, and read back.

A bundle holds the .tflite model, the tokenizer, the LlmMetadata the runtime reads
(prompt templates, stop tokens, BOS, sampler parameters, context size, chat template)
and a system-metadata entry `litert` with our own summary (source, family, settings),
so `litert run` and later tools know where a bundle came from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litert.errors import LitertError
from litert.types import ExportSettings, PromptFormat, SamplerDefaults, TokenizerAssets

SUMMARY_KEY = "litert"


@dataclasses.dataclass(frozen=True)
class ExportedModels:
    """The models an export produced: prefill/decode, the others by LiteRT-LM model type,
    and the executor metadata a transformers-native export writes beside them."""

    main: Path
    others: tuple[tuple[Path, str], ...] = ()
    """(path, section model type), e.g. (embedder.tflite, "tf_lite_embedder")."""
    executor_metadata: Path | None = None
    """The exporter's ExecutorMetadata proto: every state buffer (KV caches, convolution and
    recurrent states) by name and kind, and `max_history_size: 0` where a state cannot be
    rolled back. Carried as the exporter writes it: LiteRT-LM's executors read it instead of
    guessing the caches from input names (0.18.1 ran LFM2 the same with or without it)."""


@dataclasses.dataclass
class BundleContents:
    """Everything the bundle writer needs, gathered by the conversion pipeline."""

    tflite: Path
    tokenizer: TokenizerAssets
    prompt: PromptFormat
    stop_token_ids: list[int]
    start_token_id: int | None
    sampler: SamplerDefaults
    settings: ExportSettings
    chat_template: str | None
    summary: dict[str, Any]
    other_models: tuple[tuple[Path, str], ...] = ()
    """Models beside prefill/decode (path, LiteRT-LM section type, e.g. "tf_lite_embedder"),
    from a transformers-native export."""
    executor_metadata: Path | None = None
    """The runtime's ExecutorMetadata (state buffers), from a transformers-native export."""


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def llm_metadata(contents: BundleContents) -> Any:
    """The LlmMetadata proto the LiteRT-LM runtime reads."""
    from litert_lm_builder.runtime.proto import llm_metadata_pb2, llm_model_type_pb2, sampler_params_pb2

    meta = llm_metadata_pb2.LlmMetadata()
    if contents.start_token_id is not None:
        meta.start_token.token_ids.ids.append(contents.start_token_id)
    for token_id in contents.stop_token_ids:
        meta.stop_tokens.add().token_ids.ids.append(token_id)
    p = contents.prompt
    meta.prompt_templates.user.prefix = p.user_prefix
    meta.prompt_templates.user.suffix = p.user_suffix
    meta.prompt_templates.model.prefix = p.model_prefix
    meta.prompt_templates.model.suffix = p.model_suffix
    if p.system_prefix or p.system_suffix:
        meta.prompt_templates.system.prefix = p.system_prefix
        meta.prompt_templates.system.suffix = p.system_suffix
    s = contents.sampler
    meta.sampler_params.type = sampler_params_pb2.SamplerParameters.TOP_P
    meta.sampler_params.k = s.top_k
    meta.sampler_params.p = s.top_p
    meta.sampler_params.temperature = s.temperature
    meta.max_num_tokens = contents.settings.kv_cache_max_len
    model_types = {
        "generic": "generic_model",
        "qwen3": "qwen3",
        "qwen2p5": "qwen2p5",
        "gemma3": "gemma3",
        "gemma3n": "gemma3n",
        "gemma4": "gemma4",
        "lfm2": "lfm2",
    }
    field = model_types.get(p.runtime_model_type)
    if field is None:
        raise LitertError(
            f"unknown LiteRT-LM model type {p.runtime_model_type!r}",
            f"a plugin bug: use one of {', '.join(model_types)}",
        )
    model_type = llm_model_type_pb2.LlmModelType()
    getattr(model_type, field).SetInParent()
    meta.llm_model_type.CopyFrom(model_type)
    if contents.chat_template:
        meta.jinja_prompt_template = contents.chat_template
    # What `litert-lm describe` reports as "Supports Thinking" (Qwen3's <think> blocks).
    meta.supports_thinking = bool(p.reasoning_tags)
    return meta


def write_bundle(path: Path, contents: BundleContents, workdir: Path) -> int:
    """Write the bundle atomically to `path`; return its size in bytes."""
    import litert_lm_builder as builder_lib

    meta_path = workdir / "llm_metadata.pb"
    meta_path.write_bytes(llm_metadata(contents).SerializeToString())
    builder = builder_lib.LitertLmFileBuilder()
    builder.add_system_metadata(builder_lib.Metadata(key="Authors", value="litert", dtype=builder_lib.DType.STRING))
    builder.add_system_metadata(
        builder_lib.Metadata(
            key=SUMMARY_KEY, value=json.dumps(contents.summary, sort_keys=True), dtype=builder_lib.DType.STRING
        )
    )
    builder.add_llm_metadata(str(meta_path))
    if contents.tokenizer.kind == "sentencepiece":
        builder.add_sentencepiece_tokenizer(str(contents.tokenizer.path))
    else:
        # The builder wants a *.json name; a checkpoint's tokenizer.json always has one.
        builder.add_hf_tokenizer(str(contents.tokenizer.path))
    builder.add_tflite_model(str(contents.tflite), builder_lib.TfLiteModelType.PREFILL_DECODE)
    for model, kind in contents.other_models:
        builder.add_tflite_model(str(model), builder_lib.TfLiteModelType(kind))
    if contents.executor_metadata is not None:
        builder.add_executor_metadata(str(contents.executor_metadata))
    with atomic_output(path) as tmp, reproducible_system_metadata(contents, meta_path):
        with open(tmp, "wb") as f:
            builder.build(f)
            f.flush()
            os.fsync(f.fileno())
    return path.stat().st_size


@contextlib.contextmanager
def reproducible_system_metadata(contents: BundleContents, meta_path: Path) -> Iterator[None]:
    """Same inputs, same bytes: the builder's random uuid and wall-clock timestamp, derived instead.

    litert_lm_builder stamps every bundle with `uuid4()` and the current time. Here the
    uuid is a uuid5 of the sha256 of everything the bundle carries (model, tokenizer,
    metadata, summary), and the timestamp is SOURCE_DATE_EPOCH when set (the
    reproducible-builds convention), else the epoch. When a bundle was made is recorded in
    the model store instead (`stored_at`), outside the bytes.
    """
    import datetime
    import hashlib
    import uuid

    from litert_lm_builder import litertlm_builder

    digest = hashlib.sha256()
    extra = [contents.executor_metadata] if contents.executor_metadata is not None else []
    for part in (contents.tflite, *(p for p, _ in contents.other_models), *extra, contents.tokenizer.path, meta_path):
        with open(part, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    digest.update(json.dumps(contents.summary, sort_keys=True).encode())
    bundle_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "litert:" + digest.hexdigest()))
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()
    original = litertlm_builder.populate_system_metadata

    def populate(system_metadata: list[Any]) -> list[Any]:
        kept = [m for m in system_metadata if m.key not in ("uuid", "creation_timestamp")]
        return [
            *kept,
            litertlm_builder.Metadata(key="uuid", value=bundle_id, dtype=litertlm_builder.DType.STRING),
            litertlm_builder.Metadata(key="creation_timestamp", value=stamp, dtype=litertlm_builder.DType.STRING),
        ]

    litertlm_builder.populate_system_metadata = populate
    try:
        yield
    finally:
        litertlm_builder.populate_system_metadata = original


@dataclasses.dataclass
class Section:
    data_type: str
    begin: int
    end: int
    items: dict[str, Any]


@dataclasses.dataclass
class BundleInfo:
    """A bundle read back: system metadata, our summary, the LlmMetadata and the sections."""

    path: Path
    size: int
    version: str
    system: dict[str, Any]
    llm: Any
    sections: list[Section]

    @property
    def summary(self) -> dict[str, Any]:
        raw = self.system.get(SUMMARY_KEY)
        try:
            return json.loads(raw) if isinstance(raw, str) else {}
        except json.JSONDecodeError:
            return {}

    def section(self, data_type: str) -> Section | None:
        return next((s for s in self.sections if s.data_type == data_type), None)

    def models(self) -> dict[str, Section]:
        """The .tflite sections by LiteRT-LM model type ("tf_lite_prefill_decode", "tf_lite_embedder", ...)."""
        found: dict[str, Section] = {}
        for sec in self.sections:
            if sec.data_type == "TFLiteModel":
                found.setdefault(sec.items.get("model_type", "tf_lite_prefill_decode"), sec)
        return found

    def read_section(self, data_type: str) -> bytes:
        sec = self.section(data_type)
        if sec is None:
            raise LitertError(f"{self.path} has no {data_type} section", "reconvert the model")
        return self.read(sec)

    def read(self, sec: Section) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(sec.begin)
            return f.read(sec.end - sec.begin)

    @property
    def sampler(self) -> SamplerDefaults:
        sp = self.llm.sampler_params
        max_tokens = self.summary.get("sampler", {}).get("max_tokens")
        return SamplerDefaults(
            temperature=round(float(sp.temperature), 6),
            top_p=round(float(sp.p), 6),
            top_k=int(sp.k) or 1,
            max_tokens=max_tokens,
        )

    @property
    def stop_token_ids(self) -> list[int]:
        return [i for t in self.llm.stop_tokens for i in t.token_ids.ids]

    @property
    def start_token_ids(self) -> list[int]:
        """What the runtime writes before every prompt (BOS), empty when nothing."""
        return list(self.llm.start_token.token_ids.ids) if self.llm.HasField("start_token") else []


def read_bundle(path: Path) -> BundleInfo:
    """Read a bundle's header and LlmMetadata (not the model weights).

    Raises LitertError, in one line, for a file that is not a bundle or is damaged.
    """
    try:
        return _read_bundle(path)
    except LitertError:
        raise
    except Exception as exc:  # flatbuffers and protobuf raise anything on damaged bytes
        raise LitertError(
            f"{path} is a damaged LiteRT-LM bundle ({type(exc).__name__}: {exc})",
            "convert it again, or download it again",
        ) from exc


def _read_bundle(path: Path) -> BundleInfo:
    import struct

    from litert_lm_builder import litertlm_core, litertlm_peek
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    try:
        with open(path, "rb") as f:
            magic = f.read(8)
            version = ".".join(str(v) for v in struct.unpack("<III", f.read(12))) if len(magic) == 8 else ""
        if magic != litertlm_core.HEADER_MAGIC_BYTES:
            raise ValueError("not a .litertlm file (bad magic)")
        header = litertlm_peek.read_litertlm_header(str(path), io.StringIO())
    except (OSError, ValueError, struct.error) as exc:
        raise LitertError(f"{path} is not a readable LiteRT-LM bundle: {exc}", "reconvert the model") from exc
    system: dict[str, Any] = {}
    sm = header.SystemMetadata()
    if sm is not None:
        for i in range(sm.EntriesLength()):
            kv = litertlm_peek.kvp_to_dict(sm.Entries(i))
            system[kv["key"]] = kv["value"]
    sections: list[Section] = []
    meta = header.SectionMetadata()
    for i in range(meta.ObjectsLength() if meta is not None else 0):
        obj = meta.Objects(i)
        items = {}
        for j in range(obj.ItemsLength()):
            kv = litertlm_peek.kvp_to_dict(obj.Items(j))
            items[kv["key"]] = kv["value"]
        sections.append(
            Section(
                data_type=litertlm_core.any_section_data_type_to_string(obj.DataType()),
                begin=obj.BeginOffset(),
                end=obj.EndOffset(),
                items=items,
            )
        )
    info = BundleInfo(path=path, size=path.stat().st_size, version=version, system=system, llm=None, sections=sections)
    llm = llm_metadata_pb2.LlmMetadata()
    llm.ParseFromString(info.read_section("LlmMetadataProto"))
    info.llm = llm
    return info
