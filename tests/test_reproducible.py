"""Same inputs, same settings, same installed versions: the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import SMALLEST, run_cli


def test_reconversion_is_byte_identical(tmp_path: Path, tiny_qwen3: Path) -> None:
    from litert.bundle import read_bundle

    bundles = []
    for run in ("first", "second"):  # separate processes, directories and stores
        where = tmp_path / run
        where.mkdir()
        result = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", home=where / "home", cwd=where)
        assert result.returncode == 0, result.stderr
        bundles.append(where / "Qwen3-tiny.litertlm")
    a, b = (hashlib.sha256(p.read_bytes()).hexdigest() for p in bundles)
    assert a == b
    system = read_bundle(bundles[0]).system
    assert system["creation_timestamp"].startswith("1970-01-01")  # SOURCE_DATE_EPOCH unset: the epoch
    assert system["uuid"] == read_bundle(bundles[1]).system["uuid"]
