"""Nothing lost, nothing left behind: the store under concurrency and damage, outputs, signals.

Each case checks the same three things: one line and a non-zero exit, no leftovers (temp
directories, partial files, store entries), no stored data changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_bad_input import _assert_clean_failure

from conftest import LITERT, SMALLEST, run_cli


def _index(home: Path) -> dict:
    return json.loads((home / "models.json").read_text())["models"]


def _write_index(home: Path, models: dict) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.json").write_text(json.dumps({"version": 1, "models": models}))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_concurrent_removals_lose_no_update(tmp_path: Path) -> None:
    home = tmp_path / "home"
    models = {}
    for i in range(20):
        f = tmp_path / f"m{i:02d}.litertlm"
        f.write_bytes(b"x")
        models[f"m{i:02d}"] = {"path": str(f), "source": "x"}
    models["keep"] = {"path": str(tmp_path / "keep.litertlm"), "source": "x"}
    _write_index(home, models)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: run_cli("models", "rm", "--keep-file", f"m{i:02d}", home=home), range(20)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    assert list(_index(home)) == ["keep"]
    assert not list(home.glob("*.partial")) and not list(home.glob(".*.partial"))


def test_index_of_another_shape_is_refused_and_kept(tmp_path: Path, tiny_qwen3: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    text = json.dumps({"version": 1, "models": [1, 2, 3]})
    (home / "models.json").write_text(text)
    for args in (("models", "list"), ("convert", tiny_qwen3, *SMALLEST, "--no-verify")):
        result = run_cli(*args, home=home, cwd=tmp_path)
        _assert_clean_failure(result, tmp_path, "does not have the shape of a litert index", "a copy is kept at")
        assert "Building the model" not in result.stderr
        assert (home / "models.json").read_text() == text
    assert list(home.glob("models.json.damaged-*"))


def test_existing_output_is_not_replaced_without_force(tmp_path: Path, qwen3_bundle: Path, tiny_qwen3: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    base = out / "base.litertlm"
    shutil.copyfile(qwen3_bundle, base)
    _write_index(home, {"base": {"path": str(base), "source": "elsewhere", "parity": {"passed": True}}})
    before = (_sha(base), (home / "models.json").read_text())

    result = run_cli("convert", tiny_qwen3, *SMALLEST, "--no-verify", "-o", base, home=home)
    (tmp_path / "none").mkdir()
    _assert_clean_failure(result, tmp_path / "none", "already exists, stored as 'base'", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["base.litertlm"]
    assert (_sha(base), (home / "models.json").read_text()) == before

    # --force replaces it, and the store says so: one entry, the new one. Leftovers of a
    # conversion killed earlier (its pid is gone) are removed on the way.
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmpdir = tmp_path / "tmp"
    (tmpdir / f"litert-convert-{dead.pid}-abc").mkdir(parents=True)
    (out / f".base.litertlm.{dead.pid}.partial").write_bytes(b"partial")
    result = run_cli(
        "convert", tiny_qwen3, *SMALLEST, "--no-verify", "-o", base, "--force", home=home, env={"TMPDIR": str(tmpdir)}
    )
    assert result.returncode == 0, result.stderr
    models = _index(home)
    assert list(models) == ["Qwen3-tiny"] and models["Qwen3-tiny"]["path"] == str(base.resolve())
    assert models["Qwen3-tiny"]["source"] == str(tiny_qwen3.resolve())
    assert _sha(base) != before[0]
    assert list(tmpdir.glob("litert-*")) == [] and sorted(p.name for p in out.iterdir()) == ["base.litertlm"]

    # The same model converted again with other settings would drop the stored bundle without a
    # word: refused before any work, naming both settings.
    before = (_sha(base), (home / "models.json").read_text())
    result = run_cli("convert", tiny_qwen3, *SMALLEST, "--quantize", "fp16", "--no-verify", "-o", base, home=home)
    _assert_clean_failure(
        result, tmp_path / "none", "'Qwen3-tiny' is stored already, converted with dynamic_int8", "--name"
    )
    assert "converting with fp16" in result.stderr
    assert (_sha(base), (home / "models.json").read_text()) == before


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_signal_during_convert_cleans_up(signum: int, code: int, word: str, tmp_path: Path, tiny_qwen3: Path) -> None:
    home, tmpdir, out = tmp_path / "home", tmp_path / "tmp", tmp_path / "out"
    tmpdir.mkdir()
    out.mkdir()
    env = {**os.environ, "LITERT_HOME": str(home), "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(
        [LITERT, "convert", str(tiny_qwen3), *SMALLEST, "-o", str(out / "t.litertlm")],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while "Building the model" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "Building the model" in seen, seen
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, seen + err
    assert word in err and "Traceback" not in err
    assert list(tmpdir.glob("litert-*")) == [] and list(out.iterdir()) == []
    assert not (home / "models.json").exists() or _index(home) == {}


def test_sigkill_during_verification_leaves_nothing_at_the_output(tmp_path: Path, tiny_qwen3: Path) -> None:
    """The bundle is written and verified under a staged name and moved to -o only when it is
    stored: `kill -9` while verifying leaves nothing that blocks the re-run, and the re-run
    removes the staged leftover."""
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    argv = [LITERT, "convert", str(tiny_qwen3), *SMALLEST, "-o", str(out / "t.litertlm")]
    env = {**os.environ, "LITERT_HOME": str(home)}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    seen, deadline = b"", time.monotonic() + 300
    while b"Verifying against transformers" not in seen and time.monotonic() < deadline:
        chunk = os.read(proc.stderr.fileno(), 256)  # the stage's line ends only when it is done
        if not chunk:
            break
        seen += chunk
    assert b"Verifying against transformers" in seen, seen
    proc.kill()
    proc.wait(timeout=60)
    assert not (out / "t.litertlm").exists()
    assert [p.name for p in out.iterdir()] and all(".staged." in p.name for p in out.iterdir())
    again = run_cli(*argv[1:], home=home)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in out.iterdir()] == ["t.litertlm"]


def test_stored_name_wins_over_a_directory_of_the_same_name(tmp_path: Path, qwen3_bundle: Path) -> None:
    # `litert convert ./gemma-3-270m` prints "run it with: litert run gemma-3-270m"; typed in
    # the same directory, the name must find the bundle, not the checkpoint directory.
    home = tmp_path / "home"
    (tmp_path / "tiny").mkdir()
    _write_index(home, {"tiny": {"path": str(qwen3_bundle), "source": "x"}})
    result = run_cli("run", "tiny", "--temperature", "0", "--max-tokens", "8", input="Hi\n", home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def _corrupt(src: Path, dest: Path, at: int, length: int = 64) -> Path:
    data = bytearray(src.read_bytes())
    data[at : at + length] = bytes((b ^ 0x5A) for b in data[at : at + length])
    dest.write_bytes(bytes(data))
    return dest


def test_bad_runtime_input_gets_one_line(tmp_path: Path, qwen3_bundle: Path, tiny_qwen3: Path) -> None:
    """Each case: exit 1, one line saying what is wrong, never "bug in litert", nothing stored changed."""
    home = tmp_path / "home"
    header = _corrupt(qwen3_bundle, tmp_path / "header.litertlm", at=24, length=200)
    model = _corrupt(qwen3_bundle, tmp_path / "model.litertlm", at=qwen3_bundle.stat().st_size // 2, length=4096)
    file_home = tmp_path / "a-file"
    file_home.write_text("not a directory")
    cases = [
        (("run", qwen3_bundle, "-p", "hi", "--temperature", "nan"), {}, "temperature must be a finite number"),
        (("run", qwen3_bundle, "-p", "hi", "--temperature", "inf"), {}, "temperature must be a finite number"),
        (("run", qwen3_bundle), {"input": "\0\1\2garbage"}, "binary data"),
        (("run", header, "-p", "Hi"), {}, "header.litertlm"),
        (("verify", tiny_qwen3, header), {}, "header.litertlm"),
        (("models", "list"), {"home": file_home}, "cannot use LITERT_HOME"),
    ]
    for args, kw, needle in cases:
        result = run_cli(*args, home=kw.get("home", home), input=kw.get("input"))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, result.stderr)
        assert "bug in litert" not in lines[0], args
    # A damaged model section: the runtime's own words, or a clean refusal, never a crash.
    result = run_cli("run", model, "-p", "Hi", "--temperature", "0", "--max-tokens", "4", home=home)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr and "bug in litert" not in result.stderr


def test_generation_config_with_a_non_number_is_refused(tmp_path: Path, tiny_qwen3: Path) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen3, path)
    gen = json.loads((path / "generation_config.json").read_text())
    gen.update(top_k="abc", do_sample=True)
    (path / "generation_config.json").write_text(json.dumps(gen))
    result = run_cli("convert", path, *SMALLEST, home=tmp_path / "home", cwd=tmp_path)
    _assert_clean_failure(result, tmp_path, "generation_config.json", "not a number")


def test_verify_of_a_mismatched_pair_is_refused_up_front(tmp_path: Path, tiny_qwen3: Path, gemma3_bundle) -> None:
    result = run_cli("verify", tiny_qwen3, gemma3_bundle, home=tmp_path / "home")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "was made from a Gemma3ForCausalLM checkpoint" in lines[0] and "Qwen3ForCausalLM" in lines[0]


def test_run_hints_are_commands_that_work(tmp_path: Path, qwen3_bundle: Path) -> None:
    home = tmp_path / "home"
    result = run_cli("run", "./nope.litertlm", "-p", "hi", home=home, cwd=tmp_path)
    assert result.returncode == 1 and "there is no bundle file ./nope.litertlm" in result.stderr
    assert "litert convert" not in result.stderr
    _write_index(home, {"Qwen3-tiny": {"path": str(qwen3_bundle), "source": "x"}})
    result = run_cli("run", "qwen3-tiny", "-p", "hi", home=home, cwd=tmp_path)
    assert result.returncode == 1 and "did you mean `litert run Qwen3-tiny`?" in result.stderr


def test_models_rm_asks_before_deleting_outside_the_store_and_show(tmp_path: Path, qwen3_bundle: Path) -> None:
    home = tmp_path / "home"
    mine = tmp_path / "mine.litertlm"
    shutil.copyfile(qwen3_bundle, mine)
    _write_index(home, {"mine": {"path": str(mine), "source": "x", "quantize": "dynamic_int8"}})
    shown = run_cli("models", "show", "mine", home=home)
    assert shown.returncode == 0 and "dynamic_int8" in shown.stdout and str(mine) in shown.stdout
    assert "prefill       8,64" in shown.stdout  # read from the bundle itself
    refused = run_cli("models", "rm", "mine", home=home)  # not a terminal: never deletes unasked
    assert refused.returncode == 1 and "outside the model store" in refused.stderr and "--yes" in refused.stderr
    assert mine.is_file() and "mine" in _index(home)
    done = run_cli("models", "rm", "mine", "--yes", home=home)
    assert done.returncode == 0 and not mine.exists() and _index(home) == {}


def test_version_and_think_warning(tmp_path: Path, gemma3_bundle: Path) -> None:
    for flag in ("--version", "-V"):
        result = run_cli(flag, home=tmp_path)
        assert result.returncode == 0 and result.stdout.startswith("litert 0.1.0")
    result = run_cli(
        "run", gemma3_bundle, "-p", "Hi", "--think", "--temperature", "0", "--max-tokens", "2", home=tmp_path
    )
    assert result.returncode == 0 and "has no reasoning mode" in result.stderr


def test_two_converts_writing_one_output_leave_one_true_entry(tmp_path: Path, tiny_qwen3: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "same.litertlm"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda q: run_cli("convert", tiny_qwen3, *SMALLEST, "--quantize", q, "-o", out,
                                                  home=home), ["none", "dynamic_int8"]))  # fmt: skip
    assert all(r.returncode in (0, 1) for r in results), [r.stderr for r in results]
    assert any(r.returncode == 0 for r in results)
    models = _index(home)
    entries = [e for e in models.values() if e["path"] == str(out.resolve())]
    assert len(entries) == 1  # never two entries, nor a stale one, for one file
    from litert.bundle import read_bundle

    on_disk = read_bundle(out).summary["settings"]["quantize"]
    assert entries[0]["quantize"] == on_disk  # the entry describes the file that is there
    assert not list(tmp_path.glob(".*.partial"))


def test_models_rm_never_deletes_the_store_s_own_files_or_directories(tmp_path: Path) -> None:
    """An entry pointing at the index (through ..) or at a directory is forgotten; neither is
    deleted, and the other entries stay."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    folder = tmp_path / "a-directory"
    folder.mkdir()
    index = home / "models.json"
    entries = {
        "evil": {"path": str(home / "models" / ".." / "models.json")},
        "folder": {"path": str(folder)},
        "other": {"path": str(home / "models" / "other.litertlm")},
    }
    index.write_text(json.dumps({"version": 1, "models": entries}))
    for name in ("evil", "folder"):
        result = run_cli("models", "rm", name, "--yes", home=home)
        assert result.returncode == 0, result.stderr
        assert "not a bundle file litert deletes" in result.stdout
    assert index.is_file() and folder.is_dir()
    assert list(json.loads(index.read_text())["models"]) == ["other"]
