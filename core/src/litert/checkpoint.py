"""SOURCE -> a local checkpoint directory with its config.json parsed.

A local path always wins. Anything else that looks like a Hub id (ORG/NAME) is a Hub
source; the plugins only ever see the local directory the core resolved.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from litert.errors import LitertError
from litert.types import Checkpoint

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hub_id(source: str) -> bool:
    """True when SOURCE has the shape of a Hub repository id (ORG/NAME) and is not a local path."""
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


def resolve_source(source: str, revision: str | None = None, allow_pickle: bool = False) -> Checkpoint:
    """Locate the checkpoint SOURCE names (a local path wins, else a Hub id) and parse its config.json."""
    path = Path(source).expanduser()
    if path.exists():
        if revision is not None:
            raise LitertError(f"--revision applies to Hub ids, and {source} is a local path", "drop --revision")
        return dataclasses.replace(load_checkpoint(path, source), allow_pickle=allow_pickle)
    if is_hub_id(source):
        from litert import hub

        fetched = hub.download(source, revision=revision, allow_pickle=allow_pickle)
        ckpt = load_checkpoint(fetched.path, source)
        return dataclasses.replace(ckpt, revision=fetched.commit, allow_pickle=allow_pickle)
    raise LitertError(
        f"checkpoint {source!r} does not exist",
        "pass a Hugging Face checkpoint directory (one holding config.json and *.safetensors)",
    )


def load_checkpoint(path: Path, source: str = "") -> Checkpoint:
    """Read a checkpoint directory's config.json; the directory must look like a HF checkpoint."""
    source = source or str(path)
    if not path.is_dir():
        raise LitertError(
            f"{source} is a file, not a checkpoint directory",
            "pass the directory that holds config.json (to run a bundle, use `litert run`)",
        )
    config_path = path / "config.json"
    if not config_path.is_file():
        raise LitertError(
            f"{source} has no config.json, so it is not a Hugging Face checkpoint directory",
            "pass the directory that holds config.json, tokenizer files and *.safetensors",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LitertError(f"{config_path} is not valid JSON: {exc}", "re-download the checkpoint") from exc
    if not isinstance(config, dict):
        raise LitertError(f"{config_path} does not hold a JSON object", "re-download the checkpoint")
    return Checkpoint(path=path.resolve(), config=config, source=source)


def default_name(source: str, checkpoint: Checkpoint | None = None) -> str:
    """The store name for a source: the Hub id itself, or a local directory's name."""
    if is_hub_id(source):
        return source
    path = checkpoint.path if checkpoint is not None else Path(source).expanduser().resolve()
    return path.name
