"""The local model store: which bundles were converted, under which names.

Lives under LITERT_HOME (default: $XDG_CACHE_HOME/litert, else ~/.cache/litert). The
index `models.json` maps a name (a local checkpoint's directory name, or a Hub id) to
the bundle's path and what it was made from; it is rewritten atomically, so a crash
never leaves it half-written. Bundles themselves live wherever they were written.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import time
from collections.abc import Iterator
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


def ensure_dir(path: Path) -> Path:
    """Create `path` under LITERT_HOME, or say in one line why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LitertError(
            f"cannot use LITERT_HOME {home()}: {exc.strerror or exc} ({path})",
            "point LITERT_HOME at a writable directory",
        ) from exc
    return path


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold the inter-process lock of one output path while a conversion writes and stores it.

    The lock file lives in LITERT_HOME/locks (named by a hash of the path), not beside the
    user's bundle. A second conversion to the same path is refused at once, with one line.
    """
    import hashlib

    from filelock import FileLock, Timeout

    locks = ensure_dir(home() / "locks")
    name = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:24]
    lock = FileLock(str(locks / f"{name}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LitertError(
            f"another litert is writing {output} right now", "wait for it to finish, or pass -o elsewhere"
        ) from None
    try:
        yield
    finally:
        lock.release()


def link_into_store(src: Path, dest: Path) -> None:
    """Put `src` at `dest` atomically: a hard link where both are on one disk, else a copy."""
    ensure_dir(dest.parent)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def check_writable() -> None:
    """LITERT_HOME can take the store's files: refused before any work, not after the export."""
    from litert.disk import probe_write

    path = ensure_dir(home())
    try:
        probe_write(path)
    except OSError as exc:
        raise LitertError(
            f"cannot use LITERT_HOME {path}: {exc.strerror or exc}",
            "point LITERT_HOME at a writable directory",
        ) from exc


def runtime_cache_dir() -> Path:
    """Where the LiteRT-LM runtime keeps compiled artifacts (so nothing lands beside bundles)."""
    return ensure_dir(home() / "runtime-cache")


def log_path(name: str) -> Path:
    """A log file under LITERT_HOME/logs (the directory is created)."""
    return ensure_dir(home() / "logs") / name


def _index_path() -> Path:
    return home() / INDEX


def _lock() -> Any:
    """The inter-process lock every read-modify-write of the index holds (filelock)."""
    from filelock import FileLock

    path = ensure_dir(home())
    return FileLock(str(path / f"{INDEX}.lock"), timeout=60)


def _refuse(path: Path, what: str) -> LitertError:
    """A damaged index is never rewritten: keep a copy beside it and say where."""
    backup = path.with_name(f"{INDEX}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        shutil.copyfile(path, backup)
        kept = f"a copy is kept at {backup}; "
    except OSError:
        kept = ""
    return LitertError(
        f"the model store index {path} {what}; litert will not rewrite it",
        f"{kept}repair it, or move it away to start an empty store",
    )


def load_index() -> dict[str, dict[str, Any]]:
    """name -> entry. Raises LitertError (and changes nothing) when the index cannot be read."""
    path = _index_path()
    if home().exists() and not home().is_dir():
        raise LitertError(f"cannot use LITERT_HOME {home()}: it is not a directory", "point LITERT_HOME at a directory")
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"is not valid JSON ({exc})") from exc
    except OSError as exc:
        raise LitertError(
            f"cannot read the model store index {path}: {exc.strerror or exc}", "check LITERT_HOME"
        ) from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(isinstance(e, dict) and "path" in e for e in models.values()):
        raise _refuse(path, 'does not have the shape of a litert index ({"version": 1, "models": {NAME: {...}}})')
    return models


def _save_index(models: dict[str, dict[str, Any]]) -> None:
    path = _index_path()
    tmp = path.with_name(f".{INDEX}.{os.getpid()}.partial")
    try:
        tmp.write_text(json.dumps({"version": 1, "models": models}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LitertError(
            f"cannot write the model store index {path}: {exc.strerror or exc}",
            "free some space or make LITERT_HOME writable; the index was left as it was",
        ) from exc


@contextlib.contextmanager
def updating() -> Iterator[dict[str, dict[str, Any]]]:
    """The index, locked against other processes, saved atomically when the block succeeds."""
    with _lock():
        models = load_index()
        yield models
        _save_index(models)


def record(name: str, bundle: Path, info: dict[str, Any]) -> None:
    """Remember that `name` now refers to `bundle`; no other name keeps pointing at that file."""
    target = str(bundle.resolve())
    with updating() as models:
        for other in [n for n, e in models.items() if e.get("path") == target and n != name]:
            del models[other]
        models[name] = {**info, "path": target, "stored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def annotate(bundle: Path, **fields: Any) -> None:
    """Add fields (e.g. the parity summary) to every store entry that points at `bundle`."""
    target = str(bundle.resolve())
    with updating() as models:
        for entry in models.values():
            if entry.get("path") == target:
                entry.update(fields)


def entry_for(bundle: Path) -> dict[str, Any] | None:
    """The store entry of a bundle file, if it is stored."""
    target = str(bundle.resolve())
    return next((e for e in load_index().values() if e.get("path") == target), None)


def find(key: str, verified: bool) -> dict[str, Any] | None:
    """A stored entry made with the conversion key `key` whose bundle is still there (and,
    when `verified`, whose parity check passed)."""
    for entry in load_index().values():
        if entry.get("key") != key or not Path(entry.get("path", "")).is_file():
            continue
        if verified and not (entry.get("parity") or {}).get("passed"):
            continue
        return dict(entry)
    return None


def forget(bundle: Path) -> None:
    """Drop every entry pointing at `bundle` (a conversion that did not land)."""
    target = str(bundle.resolve())
    with updating() as models:
        for name in [n for n, e in models.items() if e.get("path") == target]:
            del models[name]


def check_name(name: str) -> str:
    """A store name is one line of printable text, its `/`-separated parts neither empty nor
    `.` / `..` (a Hub id is ORG/NAME): it becomes a path under the store and a column of
    `litert models list`."""
    parts = name.split("/")
    if (
        not name.strip()
        or len(name) > 200
        or not name.isprintable()
        or name.startswith(("/", "~"))
        or any(p in ("", ".", "..") or p != p.strip() for p in parts)
    ):
        raise LitertError(
            f"{name!r} cannot be a model name",
            "use letters, digits, '-', '_', '.' and at most ORG/NAME, e.g. --name my-model",
        )
    return name


def deletable_bundle(path: Path) -> Path | None:
    """The resolved bundle file at `path` when litert may delete it, else None: a regular
    `.litertlm` file, and never one of the store's own files (the index, its lock, logs)."""
    resolved = path.resolve()
    if resolved.suffix != ".litertlm" or not resolved.is_file() or resolved.name.startswith("."):
        return None
    if home().resolve() in resolved.parents and (home() / "models").resolve() not in resolved.parents:
        return None
    return resolved


def remove(name: str) -> dict[str, Any]:
    """Forget `name`; return its entry."""
    with updating() as models:
        if name not in models:
            names = sorted(models)
            raise LitertError(
                f"no stored model named {name!r}",
                f"stored models: {', '.join(names)}" if names else "the model store is empty",
            )
        return models.pop(name)


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
    entry = load_index().get(model)
    if path.is_dir() and entry is None:
        raise LitertError(
            f"{model} is a directory, not a bundle",
            f"convert it first with `litert convert {model}`, then run the name it prints",
        )
    # A stored name wins over a checkpoint directory of the same name: `litert convert DIR`
    # prints "run it with: litert run NAME", typed in the same directory.
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
    looks_like_path = model.endswith(".litertlm") or model.startswith((".", "/", "~")) or os.sep in model
    if looks_like_path:
        raise LitertError(
            f"there is no bundle file {model}",
            "check the path" + (f"; stored models: {', '.join(names)}" if names else ""),
        )
    close = [n for n in names if n.lower() == model.lower()] or difflib.get_close_matches(model, names, n=1)
    if close:
        hint = f"did you mean `litert run {close[0]}`?"
    elif names:
        hint = f"stored models: {', '.join(names)} (`litert models list` shows them)"
    else:
        hint = "the model store is empty: convert a checkpoint first with `litert convert CHECKPOINT_DIR`"
    raise LitertError(f"no bundle file or stored model named {model!r}", hint)
