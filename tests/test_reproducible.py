"""Same inputs, same settings, same installed versions: the same bytes, and a conversion
already in the store is answered from it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import SMALLEST, run_cli


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reconversion_is_byte_identical_and_answered_from_the_store(tmp_path: Path, tiny_qwen3: Path) -> None:
    from litert.bundle import read_bundle

    bundles = []
    for run in ("first", "second"):  # separate processes, directories and stores
        where = tmp_path / run
        where.mkdir()
        result = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", home=where / "home", cwd=where)
        assert result.returncode == 0, result.stderr
        assert "Building the model" in result.stderr
        bundles.append(where / "Qwen3-tiny.litertlm")
    assert _sha(bundles[0]) == _sha(bundles[1])
    system = read_bundle(bundles[0]).system
    assert system["creation_timestamp"].startswith("1970-01-01")  # SOURCE_DATE_EPOCH unset: the epoch
    assert system["uuid"] == read_bundle(bundles[1]).system["uuid"]

    # The same conversion again, into the first store: answered from it in seconds.
    first = tmp_path / "first"
    copy = first / "copy.litertlm"
    again = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", "-o", copy, home=first / "home", cwd=first)
    assert again.returncode == 0, again.stderr
    assert "Already converted with the same inputs, settings and versions" in again.stdout
    assert "Building the model" not in again.stderr
    assert _sha(copy) == _sha(bundles[0])
    # --force converts again, to the same bytes.
    forced = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", "--force", home=first / "home", cwd=first)
    assert forced.returncode == 0 and "Building the model" in forced.stderr
    assert _sha(bundles[0]) == _sha(bundles[1])
