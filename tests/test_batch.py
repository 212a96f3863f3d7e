"""`litert batch`: the spec, a local batch (memory-aware pool), a Ray batch on a local cluster,
a failing job that does not stop the others, resuming, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LITERT, PARIS_PROMPT, run_cli
from litert.batch import load_spec
from litert.errors import LitertError

# Two families, two recipes (a list of recipes per source is expanded: test_spec_expands_and_checks),
# plus one job made to fail: the tiny Qwen3's hidden size (64) is not a multiple of 128, which
# the planning step refuses in a fraction of a second.
SPEC = """
[defaults]
prefill_lengths = [8, 64]
kv_cache_max_len = 256

[[jobs]]
source = "./Qwen3-tiny"
quantize = "dynamic_int8"

[[jobs]]
source = "./Gemma3-tiny"
quantize = "none"

[[jobs]]
source = "./Qwen3-tiny"
quantize = "dynamic_int4_block128"
"""
GOOD = ["Qwen3-tiny-dynamic_int8", "Gemma3-tiny-none"]
BAD = "Qwen3-tiny-dynamic_int4_block128"


def batch(spec_dir: Path, home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = run_cli("batch", spec_dir / "batch.toml", "--json", *args, home=home, cwd=spec_dir)
    return result, json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {job["job"]["name"]: job["status"] for job in report["jobs"]}


def test_spec_expands_and_checks(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    (tmp_path / "ck").mkdir()
    spec.write_text(
        '[defaults]\nkv_cache_max_len = [128, 256]\n[[jobs]]\nsource = "./ck"\nquantize = ["none", "fp16"]\n'
        "prefill_lengths = [[8], [8, 64]]\n"
    )
    jobs = load_spec(spec)
    assert [j.name for j in jobs][:2] == ["ck-none-kv128-p8", "ck-none-kv128-p8_64"]
    assert len(jobs) == 8 and {j.source for j in jobs} == {str((tmp_path / "ck").resolve())}
    assert jobs[1].argv()[:8] == ["convert", jobs[1].source, "--quantize", "none", "--name", "ck-none-kv128-p8_64",
                                  "--json", "--prefill-lengths"]  # fmt: skip
    hub = tmp_path / "h.toml"
    hub.write_text('[[jobs]]\nsource = "Qwen/Qwen3-0.6B"\nname = "{name}-{quantize}-q"\n')
    assert [(j.source, j.name) for j in load_spec(hub)] == [("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B-dynamic_int8-q")]
    for text, words in (
        ('[[jobs]]\nsource = "x"\nquantise = "none"\n', "unknown key 'quantise'"),
        ('[[jobs]]\nsource = "x"\nquantize = "int3"\n', "unknown quantization recipe 'int3'"),
        ('[[jobs]]\nsource = "x"\n[[jobs]]\nsource = "x"\n', "two jobs would both be stored as 'x-dynamic_int8'"),
        ('[defaults]\nquantize = "none"\n', "lists no [[jobs]]"),
        ('[[jobs]]\nquantize = "none"\n', "source is required"),
        ('[[jobs]]\nsource = "x"\nprefill_lengths = [0]\n', "prefill_lengths must be"),
        ('[[jobs]]\nsource = "x"\nname = "{nme}"\n', "name template"),
        ("[[jobs]\n", "not valid TOML"),
    ):
        spec.write_text(text)
        with pytest.raises(LitertError, match=words.replace("[", r"\[").replace("]", r"\]")):
            load_spec(spec)


def test_local_batch_a_failing_job_and_resuming(spec_dir: Path, tmp_path: Path) -> None:
    (spec_dir / "batch.toml").write_text(SPEC)
    home = tmp_path / "home"
    first, report = batch(spec_dir, home)
    assert first.returncode == 1, first.stderr  # one job failed
    assert statuses(report) == {**dict.fromkeys(GOOD, "converted"), BAD: "failed"}
    jobs = {job["job"]["name"]: job for job in report["jobs"]}
    for name in GOOD:
        job = jobs[name]
        assert job["parity"].startswith("pass: top-1") and job["peak_bytes"] > 100e6, job
        assert Path(job["bundle"]) == home / "models" / f"{name}.litertlm" and Path(job["bundle"]).is_file()
    assert "use --quantize dynamic_int4_block32" in jobs[BAD]["error"]
    assert "2 of 3 jobs done (2 converted, 0 already in the store)" in first.stderr
    assert "1 failed" in first.stderr and (home / "logs").is_dir()
    # The batch's bundles are stored models: run one by name.
    answer = run_cli("run", "Qwen3-tiny-dynamic_int8", "-p", PARIS_PROMPT, "--temperature", "0", home=home)
    assert answer.stdout.strip() == "The capital of France is Paris.", answer.stderr
    # Resumed: what is in the store is answered from it; the failing job fails again.
    again, report = batch(spec_dir, home)
    assert again.returncode == 1
    assert statuses(report) == {**dict.fromkeys(GOOD, "in store"), BAD: "failed"}
    assert all(job["parity"].startswith("pass") for job in report["jobs"] if job["status"] == "in store")
    # The table, for people.
    table = run_cli("batch", spec_dir / "batch.toml", home=home, cwd=spec_dir)
    assert table.stdout.splitlines()[0].split() == ["JOB", "RECIPE", "STATUS", "SIZE", "TIME", "PEAK", "PARITY"]
    assert len(table.stdout.splitlines()) == 4


def test_ctrl_c_stops_the_batch_and_leaves_nothing_half_written(spec_dir: Path, tmp_path: Path) -> None:
    (spec_dir / "batch.toml").write_text(SPEC)
    home = tmp_path / "home"
    env = {**os.environ, "LITERT_HOME": str(home)}
    proc = subprocess.Popen(
        [LITERT, "batch", str(spec_dir / "batch.toml"), "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=spec_dir,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "start" in line:
            break
    # Interrupt while the first job is converting (its log shows the export under way).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "Building the model" in log.read_text() for log in home.glob("logs/batch-*/*.log")
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "not run" in err
    log = next(home.glob("logs/batch-*/Qwen3-tiny-dynamic_int8.log")).read_text()
    assert "interrupted" in log, log  # the conversion itself was stopped, and said so
    models = home / "models"
    assert not models.exists() or not list(models.iterdir())  # no bundle, no partial file


def test_sigkill_of_the_batch_takes_its_conversions_with_it(spec_dir: Path, tmp_path: Path) -> None:
    """`kill -9` of `litert batch` cannot pass anything on: the kernel stops its `litert
    convert` children (PR_SET_PDEATHSIG), which clean up as on SIGTERM; a re-run is not told
    that another litert is writing."""
    (spec_dir / "batch.toml").write_text(SPEC)
    home = tmp_path / "home"
    env = {**os.environ, "LITERT_HOME": str(home)}
    proc = subprocess.Popen(
        [LITERT, "batch", str(spec_dir / "batch.toml"), "--jobs", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=spec_dir,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "Building the model" in log.read_text() for log in home.glob("logs/batch-*/*.log")
    ):
        time.sleep(0.2)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "no conversion was running"
    proc.kill()
    proc.wait(timeout=30)

    def alive(pid: str) -> bool:  # a zombie (exited, not yet reaped by init) is not alive
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in children), "a conversion outlived its batch"
    models = home / "models"
    assert not models.exists() or not [p for p in models.iterdir() if p.suffix == ".litertlm"]


def test_a_killed_conversion_is_reported_as_killed_and_its_temp_directory_goes(tmp_path: Path) -> None:
    # A full TMPDIR under a memory-mapped write kills `litert convert` with SIGBUS: no error
    # line; the job's reason was its last progress line, and its temp directory stayed.
    import signal

    from litert import batch

    stderr = "[4/7] Exporting 2 prefill + 1 decode signatures (none) ...\n      lowering to a flatbuffer (4/5)\n"
    reason = batch._died_as(-signal.SIGBUS, stderr)
    assert reason is not None and reason.startswith("the conversion was killed by SIGBUS during: lowering")
    assert batch._died_as(1, "error: something — hint\n") is None
    assert batch._died_as(-signal.SIGKILL, "error: it said why — hint\n") is None
    left = tmp_path / "litert-convert-4242-abc"
    other = tmp_path / "litert-convert-4243-abc"
    left.mkdir()
    other.mkdir()
    batch._remove_leftovers_of(4242, {"TMPDIR": str(tmp_path)})
    assert not left.exists() and other.exists()
