"""Plugin discovery through entry points, isolation of broken plugins, and claim arbitration.

Each entry point in the group `litert` is loaded on its own: one plugin that fails to
import, or whose hooks do not match the hookspecs, is recorded and reported once on
stderr, and everything else keeps working. Metadata comes from importlib.metadata
first, so `litert plugins list` can describe a plugin that does not import.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy

from litert import hookspecs
from litert.errors import LitertError
from litert.types import Checkpoint, Claim, NativeExport, PluginManifest

ENTRY_POINT_GROUP = "litert"


@dataclasses.dataclass
class PluginRecord:
    """What the core knows about one installed plugin, loaded or not."""

    name: str
    distribution: str
    version: str
    entry_point: str
    status: str = "ok"
    """ok, failed (import or hook validation), blocked (allow/deny lists), incompatible
    (plugin API version), or duplicate (two entry points with one name)."""
    error: str | None = None
    families: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    api_version: int | None = None
    requires_core: str | None = None
    """The distribution's requirement on litert, e.g. "litert==0.1.0"."""
    hooks: tuple[str, ...] = ()
    module: ModuleType | None = dataclasses.field(default=None, repr=False)

    @property
    def manifest(self) -> PluginManifest | None:
        value = getattr(self.module, "LITERT_PLUGIN", None)
        return value if isinstance(value, PluginManifest) else None

    @property
    def native(self) -> NativeExport | None:
        """The transformers-native export its manifest builds with, if any (the memory
        estimate differs: nothing streams there)."""
        return self.manifest.native if self.manifest is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "status": self.status,
            "error": self.error,
            "families": list(self.families),
            "architectures": list(self.architectures),
            "api_version": self.api_version,
            "requires_core": self.requires_core,
            "hooks": list(self.hooks),
            "model": self.manifest.model if self.manifest else None,
        }


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _core_requirement(dist: importlib.metadata.Distribution | None) -> str | None:
    """The plugin distribution's requirement on litert, e.g. "litert==0.1.0"."""
    if dist is None:
        return None
    for req in dist.requires or ():
        head = req.split(";")[0].strip()
        name = head.replace(" ", "")
        if name == "litert" or (name.startswith("litert") and name[6:7] in "<>=!~("):
            return head.replace(" ", "")
    return None


class PluginSet:
    """The loaded plugins, the pluggy manager and the records of every entry point."""

    def __init__(self, entry_points: Iterable[importlib.metadata.EntryPoint]) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        eps = list(entry_points)
        allow = _env_list("LITERT_LOAD_PLUGINS")
        deny = _env_list("LITERT_DISABLE_PLUGINS") or set()
        by_name: dict[str, list[importlib.metadata.EntryPoint]] = {}
        for ep in eps:
            by_name.setdefault(ep.name, []).append(ep)
        for ep in eps:
            record = self._record(ep)
            if (allow is not None and ep.name not in allow) or ep.name in deny:
                record.status = "blocked"
                record.error = (
                    "not in LITERT_LOAD_PLUGINS" if allow is not None and ep.name not in allow
                    else "listed in LITERT_DISABLE_PLUGINS"
                )  # fmt: skip
            elif len(by_name[ep.name]) > 1:
                others = sorted({self._dist_name(e) for e in by_name[ep.name]})
                record.status = "duplicate"
                record.error = (
                    f"entry point name {ep.name!r} is registered by {' and '.join(others)}; uninstall one of them"
                )
            else:
                self._load(ep, record)
            self.records.append(record)
        from litert.defaults import NAME, Defaults

        self.pm.register(Defaults(self.manifest_of), name=NAME)

    @staticmethod
    def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
        dist = getattr(ep, "dist", None)
        return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"

    def _record(self, ep: importlib.metadata.EntryPoint) -> PluginRecord:
        dist = getattr(ep, "dist", None)
        return PluginRecord(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
            entry_point=ep.value,
            requires_core=_core_requirement(dist),
        )

    def _load(self, ep: importlib.metadata.EntryPoint, record: PluginRecord) -> None:
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin must not take the CLI down
            record.status = "failed"
            record.error = f"import failed: {type(exc).__name__}: {exc}"
            return
        manifest = getattr(module, "LITERT_PLUGIN", None)
        if not isinstance(manifest, PluginManifest):
            record.status = "incompatible"
            record.error = "declares no LITERT_PLUGIN = litert.PluginManifest(...), so no plugin API version"
            return
        record.families = tuple(manifest.families)
        record.architectures = tuple(manifest.architectures)
        record.api_version = manifest.api_version
        if manifest.api_version not in hookspecs.SUPPORTED_API_VERSIONS:
            record.status = "incompatible"
            supported = ", ".join(map(str, sorted(hookspecs.SUPPORTED_API_VERSIONS)))
            record.error = (
                f"written for plugin API {manifest.api_version}; this litert supports {supported} "
                f"(upgrade {'litert' if manifest.api_version > hookspecs.PLUGIN_API_VERSION else record.distribution})"
            )
            return
        try:
            self.pm.register(module, name=ep.name)
            self.pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - e.g. a misspelled or mistyped hook
            if self.pm.has_plugin(ep.name):
                self.pm.unregister(name=ep.name)
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            return
        record.module = module
        record.hooks = tuple(sorted(impl.name for impl in self.pm.get_hookcallers(module) or ()))

    def manifest_of(self, name: str) -> PluginManifest | None:
        """The manifest of the loaded plugin `name`, or None."""
        return next((r.manifest for r in self.loaded() if r.name == name), None)

    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "ok"]

    def record(self, name: str) -> PluginRecord:
        for r in self.records:
            if r.name == name and r.status == "ok":
                return r
        raise LitertError(f"no loaded plugin named {name!r}", "see `litert plugins list`")

    def families(self) -> list[str]:
        return sorted({f for r in self.loaded() for f in (r.families or (r.name,))})

    def _fail(self, rec: PluginRecord, hook: str, exc: BaseException) -> None:
        """Mark a plugin that misbehaved in a hook as failed, say so once, and stop asking it."""
        rec.status = "failed"
        rec.error = f"`{hook}` raised {type(exc).__name__}: {exc}"
        if self.pm.has_plugin(rec.name):
            self.pm.unregister(name=rec.name)
        from litert.console import warn

        warn(f"warning: plugin {rec.name!r} ({rec.distribution} {rec.version}) failed: {rec.error}")

    def call(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Ask one hook of one plugin only (the claiming plugin, with the built-in defaults
        behind it); a hook that raises is named."""
        from litert.defaults import NAME

        others = [p for n, p in self.pm.list_name_plugin() if n not in (plugin, NAME)]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        try:
            result = caller(**kwargs)
        except LitertError:
            raise
        except (Exception, SystemExit) as exc:
            if hook == "build_model":
                raise  # the conversion reports it with its stage and log
            rec = self.record(plugin)
            raise LitertError(
                f"plugin {plugin!r} ({rec.distribution} {rec.version}) failed in `{hook}`: {type(exc).__name__}: {exc}",
                f"a bug in the plugin: report it to the maintainers of {rec.distribution}",
            ) from exc
        if result is None and hook not in hookspecs.OPTIONAL_ANSWER_HOOKS:
            rec = self.record(plugin)
            raise LitertError(
                f"plugin {plugin!r} ({rec.distribution} {rec.version}) gave no answer to `{hook}`",
                f"the plugin is incomplete; report it to the maintainers of {rec.distribution}",
            )
        return result

    def claim(self, checkpoint: Checkpoint, family: str | None = None) -> tuple[str, Claim]:
        """Ask every plugin to claim; exactly one claim proceeds."""
        claims: list[tuple[str, Claim]] = []
        for rec in self.loaded():
            hook_impls = [i for i in self.pm.hook.resolve_checkpoint.get_hookimpls() if i.plugin_name == rec.name]
            if not hook_impls:
                default = manifest_claim(rec, checkpoint)
                claims.extend([(rec.name, default)] if default is not None else [])
                continue
            caller = self.pm.subset_hook_caller(
                "resolve_checkpoint",
                remove_plugins=[p for n, p in self.pm.list_name_plugin() if n != rec.name],
            )
            try:
                answers = caller(checkpoint=checkpoint)
                bad = [a for a in answers if a is not None and not isinstance(a, Claim)]
                if bad:
                    raise TypeError(f"returned {type(bad[0]).__name__}, expected litert.Claim or None")
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - one broken plugin must not stop the others
                self._fail(rec, "resolve_checkpoint", exc)
                continue
            claims.extend((rec.name, dataclasses.replace(c, plugin=rec.name)) for c in answers if c is not None)
        arch = ", ".join(checkpoint.architectures) or "no `architectures` in config.json"
        if family is not None:
            chosen = [(n, c) for n, c in claims if c.family == family or n == family]
            if not chosen:
                raise LitertError(
                    f"family {family!r} does not claim {checkpoint.source or checkpoint.path} ({arch})",
                    f"installed families: {', '.join(self.families()) or 'none'}",
                )
            claims = chosen
        if not claims:
            guess = (checkpoint.model_type or "FAMILY").split("_")[0]
            broken = [f"{r.name} ({r.status})" for r in self.records if r.status != "ok"]
            raise LitertError(
                f"no installed plugin converts {checkpoint.source or checkpoint.path} (architecture: {arch}); "
                f"installed families: {', '.join(self.families()) or 'none'}"
                + (f"; not loaded: {', '.join(broken)}" if broken else ""),
                f"install the family plugin, e.g. `pip install litert-{guess}`",
            )
        if len(claims) > 1:
            top = max(c.priority for _, c in claims)
            claims = [(n, c) for n, c in claims if c.priority == top]
        if len(claims) > 1:
            who = " and ".join(f"{self.record(n).distribution} ({c.family})" for n, c in claims)
            raise LitertError(
                f"{who} both claim {checkpoint.source or checkpoint.path} ({arch})",
                f"choose one with --family NAME ({', '.join(c.family for _, c in claims)})",
            )
        return claims[0]


def manifest_claim(rec: PluginRecord, checkpoint: Checkpoint) -> Claim | None:
    """The default claim: one of the manifest's architectures is the checkpoint's."""
    manifest = rec.manifest
    if manifest is None:
        return None
    for architecture in manifest.architectures:
        if architecture in checkpoint.architectures:
            family = manifest.families[0] if manifest.families else rec.name
            return Claim(family, checkpoint, architecture, priority=manifest.priority, plugin=rec.name)
    return None


_PLUGINS: PluginSet | None = None


def get_plugins() -> PluginSet:
    """Load the installed plugins once per process and report broken ones on stderr."""
    global _PLUGINS
    if _PLUGINS is None:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        plugins = PluginSet(sorted(eps, key=lambda e: (e.name, e.value)))
        problems = [r for r in plugins.records if r.status not in ("ok", "blocked")]
        if problems and os.environ.get("LITERT_STRICT_PLUGINS", "") not in ("", "0"):
            raise LitertError(
                "; ".join(f"plugin {r.name!r} ({r.distribution} {r.version}) {r.status}: {r.error}" for r in problems),
                "LITERT_STRICT_PLUGINS is set: fix or uninstall the plugin, or unset it",
            )
        for rec in problems:
            print(
                f"warning: plugin {rec.name!r} ({rec.distribution} {rec.version}) {rec.status}: {rec.error}",
                file=sys.stderr,
            )
        _PLUGINS = plugins
    return _PLUGINS


def reset_plugins() -> None:
    """Forget loaded plugins (tests that install or remove distributions)."""
    global _PLUGINS
    _PLUGINS = None
    importlib.invalidate_caches()
