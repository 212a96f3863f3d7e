"""`litert batch --ray`: a batch like tests/test_batch.py's as Ray tasks on a local Ray cluster.

In its own file so that the two batch tests, a minute each, run on different workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_batch import BAD, GOOD, SPEC, batch, statuses


def test_ray_batch_on_a_local_cluster(spec_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    home, out = tmp_path / "home", tmp_path / "shared-output"
    # The batch of test_batch.py with one recipe per model (2 + 1 failing), one prefill
    # signature and no parity check: what is under test here is Ray placing the jobs, not the
    # conversions (the local test checks those).
    spec = SPEC.replace("prefill_lengths = [8, 64]", "prefill_lengths = [8]\nverify = false")
    spec = spec.replace('quantize = "dynamic_int8"', 'quantize = "none"')
    (spec_dir / "batch.toml").write_text(spec.replace("kv_cache_max_len = 256", "kv_cache_max_len = 128"))
    good = [name.replace("dynamic_int8", "none") for name in GOOD]
    first, report = batch(spec_dir, home, "--ray", "local", "--output", str(out))
    assert first.returncode == 1, first.stderr
    assert statuses(report) == {**dict.fromkeys(good, "converted"), BAD: "failed"}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.litertlm" for name in good)
    assert "on Ray (local)" in first.stderr and "submitted" in first.stderr
    again, report = batch(spec_dir, home, "--ray", "local", "--output", str(out))
    assert again.returncode == 1
    assert statuses(report) == {**dict.fromkeys(good, "in store"), BAD: "failed"}
