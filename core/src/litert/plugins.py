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
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy

from litert import hookspecs
from litert.errors import LitertError
from litert.types import Checkpoint, Claim, PluginManifest

ENTRY_POINT_GROUP = "litert"


@dataclasses.dataclass
class PluginRecord:
    """What the core knows about one installed plugin, loaded or not."""

    name: str
    distribution: str
    version: str
    entry_point: str
    status: str = "ok"
    """ok, failed or duplicate."""
    error: str | None = None
    families: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    api_version: int | None = None
    hooks: tuple[str, ...] = ()
    module: ModuleType | None = dataclasses.field(default=None, repr=False)

    @property
    def manifest(self) -> PluginManifest | None:
        value = getattr(self.module, "LITERT_PLUGIN", None)
        return value if isinstance(value, PluginManifest) else None

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
            "hooks": list(self.hooks),
        }


class PluginSet:
    """The loaded plugins, the pluggy manager and the records of every entry point."""

    def __init__(self, entry_points: Iterable[importlib.metadata.EntryPoint]) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        for ep in entry_points:
            self.records.append(self._load(ep))

    def _load(self, ep: importlib.metadata.EntryPoint) -> PluginRecord:
        dist = getattr(ep, "dist", None)
        record = PluginRecord(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
            entry_point=ep.value,
        )
        if any(r.name == ep.name and r.status == "ok" for r in self.records):
            other = next(r for r in self.records if r.name == ep.name)
            record.status = "duplicate"
            record.error = f"entry point name {ep.name!r} is already used by {other.distribution}"
            return record
        try:
            module = ep.load()
            self.pm.register(module, name=ep.name)
            self.pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the CLI down
            if self.pm.has_plugin(ep.name):
                self.pm.unregister(name=ep.name)
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            return record
        record.module = module
        manifest = record.manifest
        if manifest is not None:
            record.families = tuple(manifest.families)
            record.architectures = tuple(manifest.architectures)
            record.api_version = manifest.api_version
        record.hooks = tuple(sorted(impl.name for impl in self.pm.get_hookcallers(module) or ()))
        return record

    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "ok"]

    def record(self, name: str) -> PluginRecord:
        for r in self.records:
            if r.name == name and r.status == "ok":
                return r
        raise LitertError(f"no loaded plugin named {name!r}", "see `litert plugins list`")

    def families(self) -> list[str]:
        return sorted({f for r in self.loaded() for f in (r.families or (r.name,))})

    def call(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Ask one hook of one plugin only (the claiming plugin)."""
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        result = caller(**kwargs)
        if result is None:
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
                continue
            caller = self.pm.subset_hook_caller(
                "resolve_checkpoint",
                remove_plugins=[p for n, p in self.pm.list_name_plugin() if n != rec.name],
            )
            for claim in caller(checkpoint=checkpoint):
                if claim is not None:
                    claims.append((rec.name, claim))
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
            raise LitertError(
                f"no installed plugin converts {checkpoint.source or checkpoint.path} (architecture: {arch}); "
                f"installed families: {', '.join(self.families()) or 'none'}",
                f"install the family plugin, e.g. `pip install litert-{guess}`",
            )
        if len(claims) > 1:
            who = " and ".join(f"{self.record(n).distribution} ({c.family})" for n, c in claims)
            raise LitertError(
                f"{who} both claim {checkpoint.source or checkpoint.path} ({arch})",
                f"choose one with --family NAME ({', '.join(c.family for _, c in claims)})",
            )
        return claims[0]


_PLUGINS: PluginSet | None = None


def get_plugins() -> PluginSet:
    """Load the installed plugins once per process and report broken ones on stderr."""
    global _PLUGINS
    if _PLUGINS is None:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        _PLUGINS = PluginSet(sorted(eps, key=lambda e: e.name))
        for rec in _PLUGINS.records:
            if rec.status != "ok":
                print(
                    f"warning: plugin {rec.name!r} ({rec.distribution} {rec.version}) {rec.status}: {rec.error}",
                    file=sys.stderr,
                )
    return _PLUGINS


def reset_plugins() -> None:
    """Forget loaded plugins (tests that install or remove distributions)."""
    global _PLUGINS
    _PLUGINS = None
    importlib.invalidate_caches()
