"""The conversion pipeline: source -> checkpoint -> claim -> plan -> model -> .tflite -> bundle -> store.

Each step is one function. The core owns every step except claim, plan and build,
which it delegates to the one plugin that claimed the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litert
from litert import checkpoint as checkpoint_lib
from litert import hf, store, streaming, templates, tokenizer, weights
from litert.bundle import ExportedModels
from litert.console import Progress, Steps, captured_native_output, check_interrupted, signals_held
from litert.errors import LitertError
from litert.plugins import PluginSet, get_plugins
from litert.types import (
    Checkpoint,
    Claim,
    ExportSettings,
    NativeExport,
    PromptFormat,
    SamplerDefaults,
    TokenizerAssets,
)


@dataclasses.dataclass
class ConvertOptions:
    """What the user asked for on the command line; None means the family's default."""

    output: Path | None = None
    name: str | None = None
    family: str | None = None
    quantize: str | None = None
    prefill_lengths: tuple[int, ...] | None = None
    kv_cache_max_len: int | None = None
    verbose: bool = False
    verify: bool = True
    revision: str | None = None
    """For a Hub id: a branch, tag or commit."""
    allow_pickle: bool = False
    force: bool = False
    """Replace an existing output file."""


@dataclasses.dataclass
class ConversionPlan:
    """Everything decided before the heavy work starts."""

    plugin: str
    claim: Claim
    settings: ExportSettings
    tokenizer: TokenizerAssets
    prompt: PromptFormat
    sampler: SamplerDefaults
    stop_token_ids: list[int]
    start_token_id: int | None
    chat_template: str | None


@dataclasses.dataclass
class ConversionResult:
    name: str
    path: Path
    size: int
    seconds: float
    plan: ConversionPlan
    parity: Any = None
    """The ParityReport when the bundle was verified."""
    cached_from: Path | None = None
    """Set when the conversion was answered from the store: the stored bundle it came from."""
    stored_parity: str | None = None
    """For an answer from the store: the parity line recorded when it was converted."""

    def as_json(self) -> dict[str, Any]:
        """What `litert convert --json` prints."""
        report = self.parity
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "seconds": round(self.seconds, 1),
            "family": self.plan.claim.family,
            "quantize": self.plan.settings.quantize,
            "parity": report.as_json() if report is not None else None,
            "passed": None if report is None else report.passed,
            "from_store": str(self.cached_from) if self.cached_from else None,
            "parity_summary": report.summary_line() if report is not None else self.stored_parity,
        }


def _typed(value: Any, cls: type, plugin: str, hook: str) -> Any:
    if not isinstance(value, cls):
        raise LitertError(
            f"plugin {plugin!r} answered `{hook}` with {type(value).__name__}, expected {cls.__name__}",
            "a plugin bug: report it to the plugin's maintainers",
        )
    return value


TINY_PARAMETERS = 50_000_000
"""Below this, a checkpoint is a toy or test model: the reference settings' six prefill
signatures and 1280-token cache would make its first conversion take minutes for nothing."""
TINY_SETTINGS = {"prefill_lengths": (8, 64), "kv_cache_max_len": 256}


def tiny_model_settings(ckpt: Checkpoint, settings: ExportSettings, options: ConvertOptions) -> ExportSettings:
    """A model under TINY_PARAMETERS converted with the family's default lengths (none given
    on the command line) gets prefill 8,64 and a 256-token cache, as `litert demo` uses: seconds
    instead of minutes. The plan line says so; --prefill-lengths / --kv-cache-max-len choose."""
    from litert.memory import model_parameters

    default = ExportSettings()
    if (
        options.prefill_lengths is not None
        or options.kv_cache_max_len is not None
        or (settings.prefill_lengths, settings.kv_cache_max_len) != (default.prefill_lengths, default.kv_cache_max_len)
        or model_parameters(ckpt) >= TINY_PARAMETERS
    ):
        return settings
    return dataclasses.replace(settings, **TINY_SETTINGS)


def chat_texts(ckpt: Checkpoint, prompt: PromptFormat) -> list[str]:
    """The verification conversations rendered with the checkpoint's template (as transformers
    renders them), for the tokenizer check; none for a base model."""
    if not prompt.chat_template:
        return []
    from litert import preflight
    from litert.verify import QUESTIONS

    texts = []
    for _, messages in QUESTIONS[:3]:
        with contextlib.suppress(LitertError):
            texts.append(preflight.render_template(prompt.chat_template, messages, **hf.special_tokens(ckpt)))
    return texts


def plan_conversion(plugins: PluginSet, ckpt: Checkpoint, options: ConvertOptions) -> ConversionPlan:
    """Claim the checkpoint and ask the claiming plugin for its settings and formats."""
    from litert import preflight

    plugin, claim = plugins.claim(ckpt, options.family)
    settings = _typed(plugins.call(plugin, "export_config", claim=claim), ExportSettings, plugin, "export_config")
    overrides: dict[str, Any] = {}
    if options.quantize is not None:
        overrides["quantize"] = options.quantize
    if options.prefill_lengths is not None:
        overrides["prefill_lengths"] = tuple(sorted(set(options.prefill_lengths)))
    if options.kv_cache_max_len is not None:
        overrides["kv_cache_max_len"] = options.kv_cache_max_len
    settings = dataclasses.replace(settings, **overrides)
    settings = tiny_model_settings(ckpt, settings, options)
    settings.validate()
    preflight.check_block_quantization(ckpt, settings.quantize)
    plugins.call(plugin, "check_settings", claim=claim, settings=settings)
    assets = _typed(plugins.call(plugin, "tokenizer_assets", claim=claim), TokenizerAssets, plugin, "tokenizer_assets")
    prompt = _typed(plugins.call(plugin, "prompt_format", claim=claim), PromptFormat, plugin, "prompt_format")
    sampler = _typed(plugins.call(plugin, "sampler_defaults", claim=claim), SamplerDefaults, plugin, "sampler_defaults")
    sampler.validate()
    if prompt.chat_template:
        preflight.check_template(prompt.chat_template, hf.special_tokens(ckpt))
    # the added tokens a prompt can hold: those the template or the turn markers write
    markers = (prompt.user_prefix, prompt.user_suffix, prompt.model_prefix, prompt.model_suffix)
    written = "".join([prompt.chat_template or "", *markers, prompt.system_prefix, prompt.system_suffix])
    special = sorted(t for t in hf.added_tokens(ckpt) if t in written)
    assets = tokenizer.agreeing_assets(ckpt, assets, special, chat_texts(ckpt, prompt))
    stop_ids = tokenizer.token_ids(assets, prompt.stop_tokens)
    start_id = tokenizer.token_ids(assets, (prompt.start_token,))[0] if prompt.start_token else None
    chat_template = templates.adapt_chat_template(prompt.chat_template) if prompt.chat_template else None
    return ConversionPlan(
        plugin=plugin,
        claim=claim,
        settings=settings,
        tokenizer=assets,
        prompt=prompt,
        sampler=sampler,
        stop_token_ids=stop_ids,
        start_token_id=start_id,
        chat_template=chat_template,
    )


def bundle_summary(
    plugins: PluginSet, plan: ConversionPlan, name: str, prov: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What we store inside the bundle about its making."""
    rec = plugins.record(plan.plugin)
    ckpt = plan.claim.checkpoint
    return {
        "format": 1,
        "name": name,
        "source": ckpt.source,
        "revision": ckpt.revision,
        "architecture": plan.claim.architecture,
        "family": plan.claim.family,
        "plugin": {"name": rec.name, "distribution": rec.distribution, "version": rec.version},
        "litert_version": litert.__version__,
        "settings": dataclasses.asdict(plan.settings),
        "sampler": dataclasses.asdict(plan.sampler),
        "reasoning_tags": list(plan.prompt.reasoning_tags) if plan.prompt.reasoning_tags else None,
        "chat_template": plan.chat_template is not None,
        "provenance": prov if prov is not None else provenance(plan),
    }


INPUT_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.json",
    "tokenizer.model",
    "model.safetensors.index.json",
)
VERSIONED = (
    "litert-torch",
    "ai-edge-quantizer",
    "ai-edge-litert",
    "tensorflow-cpu",
    "litert-lm",
    "torch",
    "transformers",
)


def _sha256(path: Path) -> str:
    """The file's sha256 (a safetensors file's weights checked finite on the way), read once per
    version of the file: remembered in LITERT_HOME by path,
    inode, size and modification time (hashing a 16 GB checkpoint takes half a minute, and the
    conversion cache asks for every input's hash before it can answer)."""
    import hashlib
    import json

    st = path.stat()
    key = f"{path.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    memo_path = store.home() / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo.get(key), str):
        return memo[key]
    if path.suffix == ".safetensors":
        weights.check_finite(path)  # once per file version too: a remembered hash is of finite weights
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if st.st_size >= 1 << 20:  # worth remembering; small files are hashed in no time
        prefix = f"{path.resolve()}:"
        memo = {k: v for k, v in memo.items() if not k.startswith(prefix)}  # older versions of this file
        memo[key] = digest
        with contextlib.suppress(OSError):
            tmp = memo_path.with_name(f".hashes.{os.getpid()}.tmp")
            store.ensure_dir(memo_path.parent)
            tmp.write_text(json.dumps(memo))
            os.replace(tmp, memo_path)
    return digest


def provenance(plan: ConversionPlan) -> dict[str, Any]:
    """What the bundle was made from and with: the sha256 of every checkpoint file read and
    the versions of the tools, so that anyone can check a bundle against its sources."""
    import importlib.metadata

    ckpt = plan.claim.checkpoint
    files = [ckpt.path / n for n in INPUT_FILES if (ckpt.path / n).is_file()]
    files += weights.safetensors_files(ckpt)
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "inputs": {p.name: _sha256(p) for p in sorted(set(files))},
        "versions": {"litert": litert.__version__, **versions},
    }


def default_output(name: str, from_hub: bool) -> Path:
    """Local checkpoints convert next to where the user is; Hub models into the store."""
    if from_hub:
        return store.home() / "models" / f"{name}.litertlm"
    return Path.cwd() / f"{name.split('/')[-1]}.litertlm"


def cache_key(plan: ConversionPlan, prov: dict[str, Any], plugin_version: str) -> str:
    """What makes a bundle what it is: the input files' hashes, the settings, the family
    plugin and its version, and the tool versions. Equal keys give byte-identical bundles."""
    import hashlib
    import json

    material = {
        "inputs": prov["inputs"],
        "versions": prov["versions"],
        "settings": dataclasses.asdict(plan.settings),
        "family": plan.claim.family,
        "plugin": [plan.plugin, plugin_version],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def answer_from_store(
    hit: dict[str, Any],
    name: str,
    output: Path,
    source: str,
    ckpt: Checkpoint,
    options: ConvertOptions,
    plan: ConversionPlan,
    progress: Progress,
) -> ConversionResult:
    """The same conversion was done before: reuse its bundle (copied when -o points elsewhere).
    The entry made says where this conversion's inputs came from (source, commit, the revision
    asked for), not where the reused one's did: equal bytes may come from another branch."""
    from litert.bundle import atomic_output

    stored = Path(hit["path"])
    with progress.stage(f"Reusing the stored bundle {stored} (same inputs, settings and versions)"):
        if stored.resolve() != output.resolve():
            with atomic_output(output) as tmp:
                shutil.copyfile(stored, tmp)
        info = {k: v for k, v in hit.items() if k not in ("path", "stored_at")}
        info["source"] = source if checkpoint_lib.is_hub_id(source) else str(ckpt.path.resolve())
        info["revision"], info["requested_revision"] = ckpt.revision, options.revision
        store.record(name, output, info)
    return ConversionResult(
        name=name,
        path=output,
        size=output.stat().st_size,
        seconds=progress.elapsed,
        plan=plan,
        cached_from=stored,
        stored_parity=(hit.get("parity") or {}).get("summary"),
    )


def stored_settings(settings: ExportSettings) -> dict[str, Any]:
    """The settings a store entry records: what decides which bundle a conversion makes."""
    return {
        "quantize": settings.quantize,
        "prefill_lengths": list(settings.prefill_lengths),
        "kv_cache_max_len": settings.kv_cache_max_len,
    }


def _described(settings: dict[str, Any]) -> str:
    lengths = settings.get("prefill_lengths")
    parts = [str(settings.get("quantize"))]
    if lengths:
        parts.append(f"prefill {','.join(map(str, lengths))}")
    if settings.get("kv_cache_max_len"):
        parts.append(f"KV {settings['kv_cache_max_len']}")
    return ", ".join(parts)


def check_output_free(output: Path, name: str, source: str, force: bool, settings: ExportSettings) -> None:
    """Refuse to replace an existing file unless --force. The same stored model converted again
    with the same settings is allowed; with other settings it would silently replace the stored
    (perhaps verified) bundle, so that is refused too, naming both."""
    if not output.exists() or force:
        return
    target = str(output.resolve())
    stored = {n: e for n, e in store.load_index().items() if e.get("path") == target}
    names = sorted(stored)
    if names == [name] and stored[name].get("source") in (source, str(Path(source).resolve())):
        entry, wanted = stored[name], stored_settings(settings)
        before = entry.get("settings") or {"quantize": entry.get("quantize")}
        if all(before.get(k) == v for k, v in wanted.items() if k in before):
            return  # the same model converted again: its one entry is replaced with the file
        verified = " and verified" if (entry.get("parity") or {}).get("passed") else ""
        raise LitertError(
            f"{name!r} is stored already, converted with {_described(before)}{verified}; "
            f"converting with {_described(wanted)} would replace it",
            "pass --name NAME to keep both, or --force to replace it",
        )
    as_names = f", stored as {', '.join(repr(n) for n in names)}" if names else ""
    raise LitertError(
        f"{output} already exists{as_names}",
        "pass --force to replace it (its store entry goes with it), or -o to write elsewhere",
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(output: Path) -> None:
    """Remove what conversions killed with SIGKILL left behind: their temp directories and
    partial bundles, recognised by the pid in their names, when that process is gone."""
    candidates = [
        (p, re.fullmatch(r"litert-convert-(\d+)-.*", p.name))
        for p in Path(tempfile.gettempdir()).glob("litert-convert-*")
    ]
    candidates += [(p, re.fullmatch(r"\..*\.(\d+)\.partial", p.name)) for p in output.parent.glob(".*.partial")]
    candidates += [
        (p, re.fullmatch(r"\..*\.(\d+)\.staged\.litertlm", p.name)) for p in output.parent.glob(".*.staged.litertlm")
    ]
    for path, m in candidates:
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


def _disk_full(exc: BaseException) -> Path | None:
    """The place that filled up, if `exc` (or what caused it) is "no space left on device"."""
    import errno

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            name = getattr(seen, "filename", None)
            if not name:
                return Path(tempfile.gettempdir())
            # a file in this conversion's work directory: name TMPDIR, which the user chose
            where = Path(name).parent
            tmp = Path(tempfile.gettempdir())
            return tmp if where.parent == tmp and where.name.startswith("litert-convert-") else where
        if "No space left on device" in str(seen):
            return Path(tempfile.gettempdir())
        seen = seen.__cause__ or seen.__context__
    return None


def _free(path: Path) -> str:
    from litert.console import human_size

    try:
        return human_size(shutil.disk_usage(path).free)
    except OSError:
        return "?"


def failure_log(workdir: Path) -> Path | None:
    """Keep the captured native log of a failed conversion where the user can read it."""
    log = workdir / "convert.log"
    if not log.is_file():
        return None
    dest = store.log_path("last-convert.log")
    shutil.copyfile(log, dest)
    return dest


@contextlib.contextmanager
def failing_as(stage: str, workdir: Path) -> Iterator[None]:
    """Turn what a library raises during `stage` into one LitertError naming the stage: a
    missing tensor, a full disk, anything else with the path of the kept log. The user's
    Ctrl-C that a library turned into an error of its own stays an interrupt."""
    try:
        yield
    except LitertError:
        raise
    except KeyError as exc:
        raise LitertError(
            f"{stage} failed: the checkpoint has no tensor {exc}, which the plugin's model needs",
            "either the checkpoint is incomplete (re-download it) or the plugin builds another variant "
            "of the architecture than this checkpoint's (report it to the plugin's maintainers)",
        ) from exc
    except Exception as exc:
        check_interrupted()
        full = _disk_full(exc)
        if full is not None:
            raise LitertError(
                f"{stage} failed: no space left on the device holding {full} ({_free(full)} free)",
                "free some space, or point TMPDIR (the export's work files) or -o at a larger disk",
            ) from exc
        log = failure_log(workdir)
        raise LitertError(
            f"{stage} failed: {type(exc).__name__}: {exc}",
            f"the full log is in {log}" if log else "run again with --verbose to see the converter's output",
        ) from exc


def read_source(source: str, options: ConvertOptions, progress: Progress) -> Checkpoint:
    """Step 1: the checkpoint directory (downloaded for a Hub id), checked in seconds."""
    from litert import preflight

    from_hub = checkpoint_lib.is_hub_id(source)
    title = f"Downloading {source}" + (f" @ {options.revision}" if options.revision else "")
    with progress.stage(title if from_hub else f"Reading {source}", open_line=from_hub):
        ckpt = checkpoint_lib.resolve_source(source, revision=options.revision, allow_pickle=options.allow_pickle)
        preflight.check_config(ckpt)
        weights.check_weights(ckpt)
        store.load_index()  # a store that cannot be read or written is refused before any work
        store.check_writable()
    if ckpt.revision:
        progress.say(f"      commit {ckpt.revision} · {ckpt.path}")
    return ckpt


def plan_step(plugins: PluginSet, ckpt: Checkpoint, options: ConvertOptions, progress: Progress) -> ConversionPlan:
    """Step 2: the claim, every planning hook, the memory estimate; one summary line."""
    from litert.memory import check_memory

    with progress.stage("Planning"):
        plan = plan_conversion(plugins, ckpt, options)
        rec = plugins.record(plan.plugin)
        needed, available = check_memory(ckpt, options.verify, rec.native, plan.settings.quantize)
    s = plan.settings
    progress.say(
        f"      {plan.claim.family} via {rec.distribution} {rec.version} · {s.quantize} · "
        f"prefill {','.join(map(str, s.prefill_lengths))} · KV cache {s.kv_cache_max_len} · "
        f"memory ~{needed / 1e9:.1f} GB" + (f" of {available / 1e9:.1f} GB available" if available else "")
    )
    if (s.prefill_lengths, s.kv_cache_max_len) == tuple(TINY_SETTINGS.values()) and options.prefill_lengths is None:
        progress.say(
            "      note: a tiny model: the short export litert demo uses (prefill 8,64, KV cache 256); "
            "--prefill-lengths and --kv-cache-max-len choose others"
        )
    penalty = (ckpt.read_json("generation_config.json") or {}).get("repetition_penalty")
    if isinstance(penalty, (int, float)) and penalty != 1:
        progress.say(
            f"      note: generation_config.json sets repetition_penalty {penalty}; the bundle's sampler has "
            "no such setting, so it is not carried"
        )
    return plan


def output_for(source: str, ckpt: Checkpoint, options: ConvertOptions) -> tuple[str, Path]:
    """The store name and the bundle path, checked before any work."""
    name = store.check_name(options.name if options.name is not None else checkpoint_lib.default_name(source, ckpt))
    output = options.output or default_output(name, checkpoint_lib.is_hub_id(source))
    if output.suffix != ".litertlm":
        raise LitertError(f"output {output} does not end in .litertlm", "pass -o NAME.litertlm")
    if output.is_dir():
        raise LitertError(f"output {output} is a directory", "pass -o PATH/NAME.litertlm")
    check_writable_dir(output.parent)
    return name, output


def check_writable_dir(directory: Path) -> None:
    """The bundle's directory can take a file, found out now rather than after minutes of export
    (a read-only mount, a full disk, a file where a directory should be)."""
    from litert.disk import probe_write

    try:
        probe_write(directory)
    except OSError as exc:
        raise LitertError(
            f"cannot write the bundle into {directory}: {exc.strerror or exc}",
            "pass -o with a directory you can write to",
        ) from exc


def export_step(plugins: PluginSet, plan: ConversionPlan, workdir: Path, progress: Progress) -> ExportedModels:
    """Steps 3 and 4: build the model through the plugin, lower it to a float .tflite
    (streamed weights, on two processes where it pays), quantize; the prefill/decode
    .tflite, and what else a transformers-native export made (other models, executor
    metadata)."""
    from litert.lowering import Rebuild, export_processes, lower, planned_steps
    from litert.quantizing import quantize

    s = plan.settings
    with failing_as("building the model", workdir), progress.stage("Building the model"), streaming.streaming():
        with signals_held():
            from litert.lowering import load_toolchain

            load_toolchain()  # with a Ctrl-C held, not lost (or aborting TensorFlow's start)
        module = plugins.call(plan.plugin, "build_model", claim=plan.claim, settings=s)
    if isinstance(module, NativeExport):
        return native_export_step(module, plan, workdir, progress)
    title = f"Exporting {len(s.prefill_lengths)} prefill + 1 decode signatures ({s.quantize})"
    with failing_as("exporting and quantizing", workdir), progress.stage(title, open_line=True):
        streamed = getattr(module, streaming.ATTRIBUTE, None) is not None
        parallel = streamed and export_processes(module, s.quantize) > 1
        with Steps(planned_steps(s, streamed, parallel), progress.stream) as step:
            try:
                lowered = lower(module, s, workdir, step=step, rebuild=Rebuild(plan.plugin, plan.claim))
            except streaming.NotStreamable as exc:
                # Detected, never silent: build again with the weights loaded.
                del module
                gc.collect()
                step.restart(planned_steps(s, False, False), f"note: {exc}; exporting again with the weights loaded")
                module = plugins.call(plan.plugin, "build_model", claim=plan.claim, settings=s)
                lowered = lower(module, s, workdir, step=step)
            del module  # the weights' last reference: quantizing reads the float file instead
            gc.collect()
            if s.quantize != "none":
                step(f"quantizing ({s.quantize})")
            return ExportedModels(main=quantize(lowered, workdir))


def native_export_step(native: NativeExport, plan: ConversionPlan, workdir: Path, progress: Progress) -> ExportedModels:
    """Steps 3 and 4 for a family built by litert-torch's transformers-native exporter."""
    from litert.native import export_native, exporter_recipe

    s = plan.settings
    recipe = exporter_recipe(s.quantize)  # refused before the export's stage starts
    title = f"Exporting {len(s.prefill_lengths)} prefill + 1 decode signatures, transformers-native ({s.quantize})"
    with failing_as("exporting and quantizing", workdir), progress.stage(title, open_line=True):
        with Steps(2, progress.stream) as step:
            return export_native(
                native, plan.claim.checkpoint.path, s.prefill_lengths, s.kv_cache_max_len, recipe, workdir, step
            )


def convert(source: str, options: ConvertOptions, progress: Progress | None = None) -> ConversionResult:
    """Convert SOURCE into a bundle, store it under a name, and return what was done.

    The steps: read the source, plan, choose the output, (answer from the store if the same
    conversion was done), build + export + quantize, write the bundle, verify, store. Nothing
    half-done stays: the temp directory goes, and the bundle this conversion wrote is removed
    unless it was stored."""
    from litert.bundle import BundleContents, write_bundle

    progress = progress or Progress(total=7 if options.verify else 6)
    plugins = get_plugins()
    ckpt = read_source(source, options, progress)
    plan = plan_step(plugins, ckpt, options, progress)
    name, output = output_for(source, ckpt, options)
    # One conversion writes a given output at a time: a second one waits for nothing and says so.
    with store.output_lock(output):
        check_output_free(output, name, source, options.force, plan.settings)
        remove_leftovers(output)
        prov = provenance(plan)
        key = cache_key(plan, prov, plugins.record(plan.plugin).version)
        hit = None if options.force else store.find(key=key, verified=options.verify)
        if hit is not None:
            return answer_from_store(hit, name, output, source, ckpt, options, plan, progress)

        from litert.disk import check_disk
        from litert.memory import model_parameters

        check_disk(model_parameters(ckpt), plan.settings.quantize, output, verify=options.verify)
        workdir = Path(tempfile.mkdtemp(prefix=f"litert-convert-{os.getpid()}-"))
        # Written and verified beside the output under a name of its own, moved into place only
        # when it is stored: a conversion killed at any point (even by SIGKILL, during
        # verification) leaves nothing at -o, and its staged file is a leftover the next removes.
        staged = output.with_name(f".{output.stem}.{os.getpid()}.staged.litertlm")
        try:
            with captured_native_output(workdir / "convert.log", enabled=not options.verbose):
                models = export_step(plugins, plan, workdir, progress)
                tflite = models.main
                contents = BundleContents(
                    tflite=tflite,
                    other_models=models.others,
                    executor_metadata=models.executor_metadata,
                    tokenizer=plan.tokenizer,
                    prompt=plan.prompt,
                    stop_token_ids=plan.stop_token_ids,
                    start_token_id=plan.start_token_id,
                    sampler=plan.sampler,
                    settings=plan.settings,
                    chat_template=plan.chat_template,
                    summary=bundle_summary(plugins, plan, name, prov),
                )
                with failing_as("writing the bundle", workdir), progress.stage(f"Writing {output}"):
                    size = write_bundle(staged, contents, workdir)
            report = None
            if options.verify:
                from litert.memory import release_freed_memory
                from litert.verify import verify

                release_freed_memory()  # what the export and the quantizer freed, before the reference

                with (
                    progress.stage("Verifying against transformers"),
                    captured_native_output(workdir / "verify.log", enabled=not options.verbose),
                ):
                    report = verify(ckpt.path, staged, tokens=16, quick=True, workdir=workdir, tflite=tflite)
                    # The parity report travels inside the bundle: written again with it (the same
                    # model bytes; deterministic, so re-conversions stay byte-identical). Not beside
                    # the first one nor the runtime's packed weights: a bundle's size each.
                    contents.summary["parity"] = {**report.as_json(), "bundle": None, "checkpoint": None}
                    _remove_staged(staged)
                    size = write_bundle(staged, contents, workdir)
            with progress.stage(f"Storing as {name!r}"):
                # the entry first: a store that cannot be written leaves -o as it was
                store_result(name, output, source, ckpt, options, plan, size, key, report)
                try:
                    os.replace(staged, output)
                except OSError:
                    store.forget(output)
                    raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            _remove_staged(staged)
        return ConversionResult(name=name, path=output, size=size, seconds=progress.elapsed, plan=plan, parity=report)


def _remove_staged(staged: Path) -> None:
    """Remove the staged bundle and what the runtime cached for it under its name while verifying."""
    for leftover in [staged, *store.runtime_cache_dir().glob(f"{staged.name}*")]:
        with contextlib.suppress(OSError):
            leftover.unlink()


def store_result(
    name: str,
    output: Path,
    source: str,
    ckpt: Checkpoint,
    options: ConvertOptions,
    plan: ConversionPlan,
    size: int,
    key: str,
    report: Any,
) -> None:
    """The last step: the store entry that makes `litert run NAME` find the bundle."""
    info = {
        "source": source if checkpoint_lib.is_hub_id(source) else str(ckpt.path.resolve()),
        "revision": ckpt.revision,
        "requested_revision": options.revision,
        "family": plan.claim.family,
        "quantize": plan.settings.quantize,
        "settings": stored_settings(plan.settings),
        "size": size,
        "key": key,
    }
    if report is not None:
        info["parity"] = {"passed": report.passed, "summary": report.summary_line()}
    store.record(name, output, info)


def verify_bundle(checkpoint: Path, bundle: Path, tokens: int = 16, quick: bool = True) -> Any:
    """Run the parity check and store its summary with the bundle's store entry."""
    from litert.verify import verify

    report = verify(checkpoint, bundle, tokens=tokens, quick=quick)
    store.annotate(bundle, parity={"passed": report.passed, "summary": report.summary_line()})
    return report
