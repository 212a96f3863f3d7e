"""The local model store: which bundles were converted, under which names.

Lives under LITERT_HOME (default: $XDG_CACHE_HOME/litert, else ~/.cache/litert). The
index `models.json` maps a name (a local checkpoint's directory name, or a Hub id) to
the bundle's path and what it was made from; it is rewritten atomically, so a crash
never leaves it half-written. Bundles themselves live wherever they were written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from litert.errors import LitertError

INDEX = "models.json"


def home() -> Path:
    """The litert data directory."""
    env = os.environ.get("LITERT_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "litert"


def runtime_cache_dir() -> Path:
    """Where the LiteRT-LM runtime keeps compiled artifacts (so nothing lands beside bundles)."""
    path = home() / "runtime-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(name: str) -> Path:
    """A log file under LITERT_HOME/logs (the directory is created)."""
    path = home() / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _index_path() -> Path:
    return home() / INDEX


def load_index() -> dict[str, dict[str, Any]]:
    path = _index_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LitertError(
            f"the model store index {path} is damaged: {exc}", f"delete {path} and convert again"
        ) from exc
    return data.get("models", {}) if isinstance(data, dict) else {}


def _save_index(models: dict[str, dict[str, Any]]) -> None:
    path = _index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{INDEX}.{os.getpid()}.partial")
    tmp.write_text(json.dumps({"version": 1, "models": models}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def record(name: str, bundle: Path, info: dict[str, Any]) -> None:
    """Remember that `name` now refers to `bundle`."""
    models = load_index()
    models[name] = {**info, "path": str(bundle.resolve()), "stored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _save_index(models)


def annotate(bundle: Path, **fields: Any) -> None:
    """Add fields (e.g. the parity summary) to every store entry that points at `bundle`."""
    models = load_index()
    target = str(bundle.resolve())
    changed = False
    for entry in models.values():
        if entry.get("path") == target:
            entry.update(fields)
            changed = True
    if changed:
        _save_index(models)


def entry_for(bundle: Path) -> dict[str, Any] | None:
    """The store entry of a bundle file, if it is stored."""
    target = str(bundle.resolve())
    return next((e for e in load_index().values() if e.get("path") == target), None)


def remove(name: str) -> dict[str, Any]:
    """Forget `name`; return its entry."""
    models = load_index()
    if name not in models:
        names = sorted(models)
        raise LitertError(
            f"no stored model named {name!r}",
            f"stored models: {', '.join(names)}" if names else "the model store is empty",
        )
    entry = models.pop(name)
    _save_index(models)
    return entry


def matches_revision(entry: dict[str, Any], revision: str | None) -> bool:
    """A stored entry was made from `revision` (a branch or tag as asked, or a commit sha prefix)."""
    if revision is None:
        return True
    commit = entry.get("revision") or ""
    return entry.get("requested_revision") == revision or (len(revision) >= 7 and commit.startswith(revision))


def resolve_model(model: str, revision: str | None = None) -> Path:
    """MODEL as given to `litert run`: a bundle path, or a name in the store."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise LitertError(
            f"{model} is a directory, not a bundle",
            f"convert it first with `litert convert {model}`, then run the name it prints",
        )
    entry = load_index().get(model)
    stored = Path(entry["path"]) if entry and matches_revision(entry, revision) else None
    if entry is not None and stored is None:
        raise LitertError(
            f"the stored {model!r} was made from revision {entry.get('revision')}, not {revision!r}",
            f"convert that revision first: `litert convert {model} --revision {revision}`",
        )
    if stored is not None:
        if not stored.is_file():
            raise LitertError(
                f"the bundle stored as {model!r} is gone from {stored}",
                f"convert it again with `litert convert SOURCE --name {model}`",
            )
        return stored
    names = sorted(load_index())
    known = f"stored models: {', '.join(names)}" if names else "the model store is empty"
    raise LitertError(
        f"no bundle file or stored model named {model!r} ({known})",
        f"convert it first: `litert convert {model}`",
    )
