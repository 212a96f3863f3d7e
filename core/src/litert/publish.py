"""`litert push NAME ORG/REPO`: a stored bundle to the Hugging Face Hub, with a model card.

The card is written from what the bundle itself carries (its provenance and parity
report, embedded at conversion) and from the store entry, so it says exactly how the
bundle was made. The source's licence is carried over: from the source repository's
card on the Hub, or a local checkpoint's README front matter; `--license` overrides it.
Uploads go through `huggingface_hub` (its token, endpoint and transfer protocols); the
token is never printed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from litert.errors import LitertError


@dataclasses.dataclass
class Licence:
    id: str | None
    """A Hub licence id (apache-2.0, mit, other, ...); None when the source does not say."""
    name: str | None = None
    link: str | None = None
    origin: str = "unknown"
    """Where it came from, for the user: "the source repository's card", "--license", ..."""


@dataclasses.dataclass
class Pushed:
    repo_id: str
    url: str
    commit: str
    file: str
    licence: Licence


def _licence(card: dict[str, Any] | None, origin: str) -> Licence | None:
    """The licence a model card's metadata declares, if any."""
    if not card or not card.get("license"):
        return None
    return Licence(str(card["license"]), card.get("license_name"), card.get("license_link"), origin=origin)


def source_licence(entry: dict[str, Any]) -> Licence:
    """The licence of the checkpoint a stored bundle was converted from."""
    from litert.checkpoint import is_hub_id

    source = str(entry.get("source") or "")
    if is_hub_id(source):
        from huggingface_hub import HfApi

        from litert.hub import hub_timeout

        try:
            info = HfApi().model_info(source, revision=entry.get("revision") or None, timeout=hub_timeout())
        except Exception:  # noqa: BLE001 - HTTP, transport (httpx2) or offline: the licence is then unknown
            return Licence(None, origin=f"unknown (the card of {source} could not be read)")
        card = info.card_data.to_dict() if info.card_data is not None else None
        return _licence(card, f"the card of {source}") or Licence(None, origin=f"unknown ({source} declares none)")
    readme = Path(source) / "README.md"
    if readme.is_file():
        import yaml  # huggingface_hub's own dependency, which parses the metadata
        from huggingface_hub import metadata_load

        try:
            found = _licence(metadata_load(readme), str(readme))
        except (ValueError, yaml.YAMLError) as exc:
            return Licence(None, origin=f"unknown ({readme} has metadata that does not parse: {exc})")
        if found:
            return found
    return Licence(None, origin="unknown (the local checkpoint has no README.md with a licence)")


def _source_line(entry: dict[str, Any], conversion: dict[str, Any]) -> str:
    from litert.checkpoint import is_hub_id

    source = str(entry.get("source") or conversion.get("source") or "?")
    commit = entry.get("revision") or conversion.get("revision")
    if is_hub_id(source):
        at = f" at commit `{commit}`" if commit else ""
        return f"[{source}](https://huggingface.co/{source}){at}"
    return f"a local checkpoint (`{Path(source).name}`)"


def model_card(repo_id: str, entry: dict[str, Any], bundle: Path, licence: Licence) -> str:
    """The README.md pushed beside the bundle."""
    import hashlib
    import json

    from litert.checkpoint import is_hub_id
    from litert.console import human_size
    from litert.inspection import describe

    d = describe(bundle)
    conversion = d.get("conversion") or {}
    settings = conversion.get("settings") or {}
    parity = d.get("parity") or {}
    provenance = d.get("provenance") or {}
    source = str(entry.get("source") or conversion.get("source") or "")
    with open(bundle, "rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    from huggingface_hub import ModelCardData

    metadata = ModelCardData(
        license=licence.id or "unknown",
        license_name=licence.name,
        license_link=licence.link,
        base_model=source if is_hub_id(source) else None,
        library_name="litert-lm",
        pipeline_tag="text-generation",
        tags=["litert", "litert-lm", "tflite", "on-device"],
    )
    front = ["---", metadata.to_yaml(), "---", ""]
    plugin = conversion.get("plugin") or {}
    file = bundle.name
    lines = [
        f"# {repo_id}",
        "",
        f"A LiteRT-LM bundle (`.litertlm`) of {_source_line(entry, conversion)}, converted by "
        f"[litert](https://pypi.org/project/litert/) {conversion.get('litert_version', '?')} for on-device "
        "inference with LiteRT-LM.",
        "",
        "## Run it",
        "",
        "```sh",
        f"litert run {repo_id}                  # pip install litert",
        f"litert-lm run --from-huggingface-repo {repo_id} {file}   # the official LiteRT-LM CLI",
        "```",
        "",
        "## How it was made",
        "",
        "| | |",
        "|---|---|",
        f"| source | {_source_line(entry, conversion)} |",
        f"| family | {conversion.get('family', '?')} (plugin {plugin.get('distribution', '?')} "
        f"{plugin.get('version', '?')}) |",
        f"| quantization | {settings.get('quantize', '?')} |",
        f"| prefill signatures | {', '.join(map(str, settings.get('prefill_lengths') or [])) or '?'} |",
        f"| KV cache (context) | {settings.get('kv_cache_max_len', '?')} tokens |",
        f"| file | `{file}`, {human_size(d['size'])} ({d['size']:,} bytes) |",
        f"| sha256 | `{sha256}` |",
        f"| licence | {licence.id or 'unknown'} ({licence.origin}) |",
        "",
    ]
    if parity:
        th = parity.get("thresholds") or {}
        lines += [
            "## Parity against transformers",
            "",
            "Measured at conversion: the bundle's own model against the original checkpoint in transformers, "
            "teacher-forced on the same prompts, and greedy generation through the LiteRT-LM runtime.",
            "",
            "| measure | value | threshold |",
            "|---|---|---|",
            f"| top-1 agreement | {parity.get('top1', 0) * 100:.1f} % | ≥ {th.get('top1', 0) * 100:.0f} % |",
            f"| mean KL divergence | {parity.get('kl', 0):.4f} | ≤ {th.get('kl', '?')} |",
            f"| max \\|Δlogit\\| | {parity.get('max_abs_logit_diff', 0):.3f} | |",
            f"| greedy answers identical | {parity.get('greedy_whole', '?')} of {len(parity.get('prompts') or [])} "
            f"(shortest identical run {parity.get('greedy_min', '?')} tokens) | "
            f"{th.get('greedy', '?')} tokens on {th.get('greedy_share', 1) * 100:.0f} % of prompts |",
            f"| verdict | **{'pass' if parity.get('passed') else 'FAIL'}** | |",
            "",
        ]
    else:
        lines += ["## Parity against transformers", "", "Not measured (converted with `--no-verify`).", ""]
    if provenance:
        lines += [
            "## Provenance",
            "",
            "The sha256 of every input file read, and the versions that made the bundle "
            "(`litert inspect` shows the same from the file itself):",
            "",
            "```json",
            json.dumps(provenance, indent=2, sort_keys=True),
            "```",
            "",
        ]
    return "\n".join(front + lines)


def push(name: str, repo_id: str, private: bool, licence_override: str | None = None) -> Pushed:
    """Upload the stored bundle `name` and its card to `repo_id` (created if needed)."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    from litert import store
    from litert.checkpoint import is_hub_id

    if not is_hub_id(repo_id) or Path(repo_id).exists():
        raise LitertError(f"{repo_id!r} is not a Hub repository id", "use ORG/NAME, e.g. my-org/Qwen3-0.6B-litert")
    models = store.load_index()
    entry = models.get(name)
    if entry is None:
        names = sorted(models)
        raise LitertError(
            f"no stored model named {name!r}",
            f"stored models: {', '.join(names)}" if names else "convert one first: litert convert SOURCE",
        )
    bundle = Path(entry["path"])
    if not bundle.is_file():
        raise LitertError(f"the bundle stored as {name!r} is gone from {bundle}", "convert it again")
    licence = Licence(licence_override, origin="--license") if licence_override else source_licence(entry)
    file = f"{name.split('/')[-1]}.litertlm"
    card = model_card(repo_id, entry, bundle, licence).encode()
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not get_token():
        raise LitertError(f"pushing to {repo_id} needs a Hugging Face token", "set HF_TOKEN or run `hf auth login`")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id,
            operations=[
                CommitOperationAdd(path_in_repo=file, path_or_fileobj=str(bundle)),
                CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card),
            ],
            commit_message=f"Add {file} (converted by litert)",
        )
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            refusal = "did not accept this token for" if status == 401 else "refused to let this token write to"
            raise LitertError(
                f"the Hub {refusal} {repo_id} (HTTP {status})",
                "use a token with write access to that namespace (HF_TOKEN=... or `hf auth login`)",
            ) from exc
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LitertError(f"pushing to {repo_id} failed: {first}", f"check {endpoint} and the repository") from exc
    except Exception as exc:  # the client's transport errors (httpx2's) share no base with OSError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LitertError(f"pushing to {repo_id} failed: {first}", f"check the network and {endpoint}") from exc
    return Pushed(repo_id=repo_id, url=f"{endpoint}/{repo_id}", commit=info.oid, file=file, licence=licence)
