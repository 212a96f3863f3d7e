"""MODEL as a user types it -> a bundle on disk: a bundle path, a stored name, or a Hub
repository (pulled when it holds a bundle, else converted). One place, so `litert run`,
`serve`, `verify` and `pull` resolve the same way."""

from __future__ import annotations

from pathlib import Path

from litert.errors import LitertError

__all__ = ["bundle_for", "pull_bundle"]


def bundle_for(model: str, revision: str | None = None, convert: bool = False) -> Path:
    """The bundle for MODEL as `litert run`, `serve` and `verify` take it: a bundle path, a
    stored name, or a Hub id with no stored bundle, which is pulled (a repository holding a
    bundle) or converted (a checkpoint, or any repository with `convert`) first."""
    from litert import hub, store
    from litert.checkpoint import is_hub_id

    try:
        return store.resolve_model(model, revision)
    except LitertError:
        if not is_hub_id(model) or (store.load_index().get(model) is not None):
            raise
    from litert.console import _private_stderr
    from litert.convert import ConvertOptions
    from litert.convert import convert as run_convert

    if not convert and hub.offline() and hub.cached_bundles(model, revision):
        return pull_bundle(model, revision, None)  # a bundle repository in the cache, offline
    if not convert and not hub.offline():
        bundles, files = hub.bundle_files(model, revision)
        if bundles:
            print(
                f"No stored bundle for {model}; pulling its pre-converted bundle.", file=_private_stderr(), flush=True
            )
            return pull_bundle(model, revision, None, files)
    print(f"No stored bundle for {model}; converting it first.", file=_private_stderr(), flush=True)
    return run_convert(model, ConvertOptions(revision=revision)).path


def pulled_name(repo_id: str, file: str | None, bundles: tuple[str, ...]) -> str:
    """The store name of a pulled bundle: the repository's id when it holds one bundle (or no
    file was chosen), else ORG/NAME/STEM, one name per bundle."""
    return repo_id if file is None or len(bundles) <= 1 else f"{repo_id}/{Path(file).stem}"


def pull_bundle(repo_id: str, revision: str | None, file: str | None, listing: list[str] | None = None) -> Path:
    """Download a Hub repository's bundle and store it under `pulled_name`."""
    from litert import hub, store
    from litert.bundle import read_bundle

    got = hub.pull(repo_id, revision, file, listing)
    summary = read_bundle(got.path).summary
    # One bundle in the repository: stored as the repository; one of several: as repo/stem.
    name = pulled_name(repo_id, file, got.bundles)
    # The runtime knows a bundle by its .litertlm name, and the cache's blob has none: the
    # store links the blob under the model's name (a hard link: no second copy on one disk).
    dest = store.home() / "models" / f"{name}.litertlm"
    store.link_into_store(got.path.resolve(), dest)
    store.record(
        name,
        dest,
        {
            "source": repo_id,
            "revision": got.commit,
            "requested_revision": revision,
            "file": got.path.name,
            "family": summary.get("family", "?"),
            "quantize": (summary.get("settings") or {}).get("quantize", "?"),
            "size": dest.stat().st_size,
            "pulled": True,
        },
    )
    return dest
