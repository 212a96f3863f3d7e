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

    first, second = tmp_path / "first", tmp_path / "second"
    for where in (first, second):
        where.mkdir()
    home = first / "home"
    result = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", home=home, cwd=first)
    assert result.returncode == 0, result.stderr
    assert "Building the model" in result.stderr
    made = first / "Qwen3-tiny.litertlm"

    # The same conversion again: answered from the store in seconds, the same bytes.
    copy = first / "copy.litertlm"
    again = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", "-o", copy, home=home, cwd=first)
    assert again.returncode == 0, again.stderr
    assert "Already converted with the same inputs, settings and versions" in again.stdout
    assert "Building the model" not in again.stderr
    assert _sha(copy) == _sha(made)

    # --force converts again (another process, another directory): byte-identical.
    forced = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", "--force", home=home, cwd=second)
    assert forced.returncode == 0 and "Building the model" in forced.stderr, forced.stderr
    rebuilt = second / "Qwen3-tiny.litertlm"
    assert _sha(rebuilt) == _sha(made)
    system = read_bundle(made).system
    assert system["creation_timestamp"].startswith("1970-01-01")  # SOURCE_DATE_EPOCH unset: the epoch
    assert system["uuid"] == read_bundle(rebuilt).system["uuid"]
