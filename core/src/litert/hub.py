"""Hugging Face Hub sources: download what a conversion needs, pinned to a commit.

Uses `huggingface_hub` and its usual cache, so HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE,
HF_ENDPOINT and tokens (HF_TOKEN or a prior `hf auth login`) work as everywhere else.
Only the files a conversion needs are fetched; an interrupted download resumes. The
revision the user named (branch, tag or commit) is resolved to the commit that was
actually downloaded, and that sha is what gets recorded.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import os
import posixpath
import re
from pathlib import Path

from litert.errors import LitertError

# What a conversion reads; everything else in a repository (README, images, other
# formats) is left on the Hub.
NEEDED = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
    "*.safetensors",
)
PICKLES = ("*.bin", "*.pt", "*.pth", "pytorch_model.bin.index.json")


@dataclasses.dataclass
class Download:
    path: Path
    """The snapshot directory in the Hugging Face cache."""
    commit: str
    """The commit sha that was downloaded."""
    bundles: tuple[str, ...] = ()
    """For a pulled bundle: every bundle the repository holds (empty when not listed, offline)."""


def _safe_name(name: str) -> bool:
    """A repository file name that stays inside the snapshot directory."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        return False
    norm = posixpath.normpath(name)
    return not (norm.startswith("..") or norm.startswith("/") or "/../" in f"/{norm}/")


def wanted(files: list[str], allow_pickle: bool) -> list[str]:
    """The repository files a conversion needs."""
    patterns = NEEDED + (PICKLES if allow_pickle else ())
    chosen = [f for f in files if "/" not in f and any(fnmatch.fnmatch(f, p) for p in patterns)]
    bad = [f for f in files if not _safe_name(f)]
    if bad:
        raise LitertError(
            f"the repository lists file names that escape the download directory: {', '.join(bad[:3])}",
            "do not use this repository",
        )
    return chosen


def hub_timeout() -> float:
    """Seconds a Hub request may wait for an answer (LITERT_HUB_TIMEOUT, default 60): the
    Hub client passes `timeout=None`, waiting for ever, unless told; downloads themselves use
    huggingface_hub's own HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT (10 s between bytes)."""
    try:
        return max(1.0, float(os.environ.get("LITERT_HUB_TIMEOUT", "60")))
    except ValueError:
        return 60.0


def _hub_error(exc: Exception, repo_id: str, revision: str | None) -> LitertError:
    from huggingface_hub import errors

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if any("Timeout" in type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None):
        return LitertError(
            f"{endpoint} did not answer within {hub_timeout():.0f} s (for {repo_id})",
            "check the network or HF_ENDPOINT; LITERT_HUB_TIMEOUT=SECONDS waits longer; HF_HUB_OFFLINE=1: the cache",
        )
    if isinstance(exc, errors.GatedRepoError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        refused = status == 403
        return LitertError(
            f"{repo_id} is a gated repository and "
            + ("the token you provided was refused" if refused else "no token was provided"),
            f"accept the licence on {endpoint}/{repo_id} and provide a token with access "
            "(HF_TOKEN=... or `hf auth login`)",
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return LitertError(
            f"revision {revision!r} does not exist in {repo_id}",
            "pass a branch, tag or commit sha that exists (see the repository's files and versions)",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return LitertError(
            f"there is no local directory {repo_id} and no repository {repo_id} on the Hub",
            "check the path or the id for a typo; if the repository is private, provide a token "
            "(HF_TOKEN=... or `hf auth login`)",
        )
    if isinstance(exc, errors.OfflineModeIsEnabled | errors.LocalEntryNotFoundError):
        return LitertError(
            f"{repo_id} is not in the local Hugging Face cache and downloading is not possible (offline)",
            "connect once to download it (unset HF_HUB_OFFLINE), or pass a local checkpoint directory",
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return LitertError(
            f"the disk filled up while downloading {repo_id}",
            "free some space, or point HF_HOME at a larger disk",
        )
    return LitertError(
        f"there is no local directory {repo_id}, and downloading it from {endpoint} failed: "
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        "check the path, or the network (HF_HUB_OFFLINE=1 uses the Hugging Face cache only)",
    )


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def download(repo_id: str, revision: str | None = None, allow_pickle: bool = False) -> Download:
    """Fetch the files a conversion of `repo_id` needs; return the snapshot and its commit."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        if offline():
            path = Path(
                snapshot_download(repo_id, revision=revision, local_files_only=True, allow_patterns=list(NEEDED))
            )
            return Download(path=path, commit=path.name)
        info = HfApi().model_info(repo_id, revision=revision, timeout=hub_timeout())
        files = [s.rfilename for s in info.siblings or []]
        chosen = wanted(files, allow_pickle)
        if not any(f.endswith(".safetensors") for f in chosen):
            pickles = [f for f in files if any(fnmatch.fnmatch(f, p) for p in PICKLES)]
            if pickles and not allow_pickle:
                raise LitertError(
                    f"{repo_id} has only pickle weights ({', '.join(pickles[:3])}); litert does not load pickles "
                    "by default, since unpickling can run arbitrary code",
                    "if you trust the repository, pass --allow-pickle (tensors are then loaded with "
                    "torch.load(weights_only=True))",
                )
            if not pickles:
                raise LitertError(f"{repo_id} has no model weights (*.safetensors)", "check the repository id")
        # Download by the name the user gave, so the cache also learns which commit that
        # branch or tag points to (offline runs resolve it later); the snapshot directory
        # is named by the commit actually downloaded.
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=chosen))
        return Download(path=path, commit=path.name)
    except LitertError:
        raise
    except Exception as exc:
        raise _hub_error(exc, repo_id, revision) from exc


def bundle_files(repo_id: str, revision: str | None = None) -> tuple[list[str], list[str]]:
    """(the .litertlm files, all files) of a Hub repository at `revision`."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=hub_timeout())
    except LitertError:
        raise
    except Exception as exc:
        raise _hub_error(exc, repo_id, revision) from exc
    files = [s.rfilename for s in info.siblings or []]
    return sorted(f for f in files if f.endswith(".litertlm")), files


def cached_bundles(repo_id: str, revision: str | None = None) -> list[str]:
    """The .litertlm files of `repo_id` already in the local Hugging Face cache (what an
    offline machine can pull), or [] when the repository is not cached."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (LocalEntryNotFoundError) or an id the cache cannot hold
        return []
    return sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*.litertlm"))


def blob_intact(path: Path) -> bool:
    """Whether a file of the Hugging Face cache still holds the bytes it was stored as.

    The cache keeps a large (LFS) file as `blobs/<sha256 of its bytes>` and a snapshot symlink
    to it, and trusts whatever the blob holds. Checked offline too: the name is the sha256."""
    import hashlib

    blob = path.resolve()
    if not re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return True  # a small (git) file, named by its git hash: nothing to check it against
    with open(blob, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == blob.name


def pull(
    repo_id: str, revision: str | None = None, file: str | None = None, listing: list[str] | None = None
) -> Download:
    """Download a pre-converted bundle from a Hub repository into the Hugging Face cache.

    A repository with one bundle needs no `file`; with several, `file` chooses (the error
    lists them). Tokens, HF_HOME, HF_ENDPOINT and offline mode work as for checkpoints; the
    commit downloaded is returned. `listing`: the repository's files, when the caller has
    them already (so the repository is asked once).
    """
    from huggingface_hub import hf_hub_download

    try:
        if offline():
            cached = cached_bundles(repo_id, revision)
            if not cached:
                raise LitertError(
                    f"offline, and no bundle of {repo_id} is in the Hugging Face cache",
                    "pull it once online, or unset HF_HUB_OFFLINE",
                )
            if file is None and len(cached) > 1:
                raise LitertError(
                    f"{repo_id} has {len(cached)} cached bundles: {', '.join(cached)}", "choose one with --file NAME"
                )
            file = file or cached[0]
            if file not in cached:
                raise LitertError(f"{repo_id} has no cached bundle {file!r}; cached: {', '.join(cached)}", "pass one")
            path = Path(hf_hub_download(repo_id, file, revision=revision, local_files_only=True))
            if not blob_intact(path):
                raise LitertError(
                    f"the cached {file} of {repo_id} is damaged (its bytes do not match its sha256)",
                    "pull it again online (unset HF_HUB_OFFLINE): the damaged copy is then replaced",
                )
            return Download(path=path, commit=path.parent.name, bundles=tuple(cached))
        if listing is None:
            bundles, files = bundle_files(repo_id, revision)
        else:
            files = listing
            bundles = sorted(f for f in files if f.endswith(".litertlm"))
        if not bundles:
            has_weights = any(f.endswith(".safetensors") for f in files)
            raise LitertError(
                f"{repo_id} holds no .litertlm bundle" + (" (it holds a checkpoint)" if has_weights else ""),
                f"convert it: `litert convert {repo_id}`" if has_weights else "check the repository id",
            )
        if file is None:
            if len(bundles) > 1:
                raise LitertError(
                    f"{repo_id} holds {len(bundles)} bundles: {', '.join(bundles)}", "choose one with --file NAME"
                )
            file = bundles[0]
        elif file not in bundles:
            raise LitertError(f"{repo_id} has no bundle {file!r}; it has {', '.join(bundles)}", "pass one of them")
        path = Path(hf_hub_download(repo_id, file, revision=revision))
        if not blob_intact(path):  # a damaged cached copy (the cache trusts its files): fetched again, once
            path = Path(hf_hub_download(repo_id, file, revision=revision, force_download=True))
            if not blob_intact(path):
                raise LitertError(
                    f"{file} of {repo_id} arrives damaged: its bytes do not match the sha256 the Hub lists",
                    "try again later; if it persists, the repository's file is broken",
                )
        return Download(path=path, commit=path.parent.name, bundles=tuple(bundles))
    except LitertError:
        raise
    except Exception as exc:
        raise _hub_error(exc, repo_id, revision) from exc
