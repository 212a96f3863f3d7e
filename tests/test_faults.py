"""The fault table: faults a user can cause, each with its expected exit code and message, and
for every case the same three checks — one line, nothing left behind, no stored data changed.

Disk-full and read-only cases use small tmpfs mounts made by the test (root only; skipped
where mounting is not allowed). Signal, concurrency and plugin cases, which need more
than one command, live in test_reliability.py and test_plugin_loading.py; docs/reliability.md
lists them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_bad_input import PROGRESS

from conftest import SMALLEST, run_cli


@dataclasses.dataclass
class World:
    """What a case runs in: a store holding one bundle, an output directory, a TMPDIR."""

    root: Path
    home: Path
    out: Path
    tmp: Path
    ckpt: Path
    bundle: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)])


def fill(path: Path) -> None:
    """Fill a filesystem to the last byte."""
    with contextlib.suppress(OSError), open(path / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()


@dataclasses.dataclass
class Case:
    name: str
    args: Callable[[World], list[str]]
    pattern: str
    code: int = 1
    setup: Callable[[World, contextlib.ExitStack], None] = lambda w, stack: None
    input: str | None = None


def _tmpdir_small(w: World, stack: contextlib.ExitStack) -> None:
    w.env["TMPDIR"] = str(stack.enter_context(tmpfs(w.root / "small-tmp", "600k")))


def _tmpdir_fills(w: World, stack: contextlib.ExitStack) -> None:
    """A TMPDIR with room at the start, filled by someone else once the conversion's work
    directory exists (after every pre-flight check) up to 192 KB: room for the tracing, not
    for the float model. The converter's own writer of that model ends the process with exit
    1 on a full disk, its message in the log on the same disk (before: exit 1, not a word,
    the work directory left behind)."""
    tmp = stack.enter_context(tmpfs(w.root / "filling-tmp", "64m"))
    w.env["TMPDIR"] = str(tmp)
    stop = threading.Event()

    def fill_when_started() -> None:
        while not stop.wait(0.02):
            if list(tmp.glob("litert-convert-*")):
                fd = os.open(tmp / "filler", os.O_CREAT | os.O_WRONLY)
                try:
                    os.posix_fallocate(fd, 0, shutil.disk_usage(tmp).free - 192 * 1024)
                finally:
                    os.close(fd)
                return

    thread = threading.Thread(target=fill_when_started, daemon=True)
    thread.start()
    stack.callback(thread.join)
    stack.callback(stop.set)


def _home_full(w: World, stack: contextlib.ExitStack) -> None:
    # The store (with its index and bundle) on a filesystem that is then filled.
    mount = stack.enter_context(tmpfs(w.root / "full-home", "4m"))
    shutil.copytree(w.home, mount / "home")
    index = json.loads((mount / "home" / "models.json").read_text())
    index["models"]["keep"]["path"] = str(mount / "home" / "models" / "keep.litertlm")
    (mount / "home" / "models.json").write_text(json.dumps(index))
    w.home = mount / "home"
    w.bundle = mount / "home" / "models" / "keep.litertlm"
    fill(mount)


def _home_read_only(w: World, stack: contextlib.ExitStack) -> None:
    mount = w.root / "ro-home"
    mount.mkdir()
    stack.enter_context(tmpfs(mount, "1m", read_only=True))
    w.home = mount


def _bad_template(w: World, stack: contextlib.ExitStack) -> None:
    (w.ckpt / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }")


def _int_weights(w: World, stack: contextlib.ExitStack) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(w.ckpt / "model.safetensors"))
    state["model.norm.weight"] = state["model.norm.weight"].to(torch.int32)
    save_file(state, str(w.ckpt / "model.safetensors"), metadata={"format": "pt"})


def _nan_weights(w: World, stack: contextlib.ExitStack) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(w.ckpt / "model.safetensors"))
    state["model.layers.1.mlp.down_proj.weight"][3, 5] = float("nan")
    save_file(state, str(w.ckpt / "model.safetensors"), metadata={"format": "pt"})


def _read_only_output(w: World, stack: contextlib.ExitStack) -> None:
    stack.enter_context(tmpfs(w.root / "ro-out", "1m", read_only=True))


def _truncated_bundle(w: World, stack: contextlib.ExitStack) -> None:
    data = w.bundle.read_bytes()
    (w.out / "cut.litertlm").write_bytes(data[: len(data) // 3])


CASES = [
    Case(
        "convert with a TMPDIR too small",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "--no-verify", "-o", str(w.out / "new.litertlm")],
        r"converting needs about .* of disk for the work files in .*small-tmp and .* is free",
        setup=_tmpdir_small,
    ),
    Case(
        "TMPDIR fills during the export",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "--no-verify", "-o", str(w.out / "new.litertlm")],
        r"no space left on the device holding .*filling-tmp \(1\d\d\.\d KB free\)",
        setup=_tmpdir_fills,
    ),
    Case(
        "convert into a full LITERT_HOME",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "--no-verify", "-o", str(w.out / "new.litertlm")],
        r"model store index .*No space left on device",
        setup=_home_full,
    ),
    Case(
        "convert with a read-only LITERT_HOME",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "--no-verify"],
        r"cannot use LITERT_HOME .*Read-only file system",
        setup=_home_read_only,
    ),
    Case(
        "chat template with a syntax error",
        lambda w: ["convert", str(w.ckpt), *SMALLEST],
        r"chat template has a syntax error",
        setup=_bad_template,
    ),
    Case("int32 weights", lambda w: ["convert", str(w.ckpt), *SMALLEST], r"not floating point", setup=_int_weights),
    Case(
        "a NaN among the weights",
        lambda w: ["convert", str(w.ckpt), *SMALLEST],
        r"model\.safetensors: tensor model\.layers\.1\.mlp\.down_proj\.weight holds NaN or infinite values",
        setup=_nan_weights,
    ),
    Case(
        "output into a read-only directory",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "-o", str(w.root / "ro-out" / "new.litertlm")],
        r"cannot write the bundle into .*ro-out: Read-only file system",
        setup=_read_only_output,
    ),
    Case(
        "push while offline",
        lambda w: ["push", "keep", "someone/keep-litert"],
        r"pushing to someone/keep-litert failed: .*offline mode",
        setup=lambda w, s: w.env.update(HF_TOKEN="hf_test"),
    ),
    Case(
        "push to an endpoint that refuses connections",
        lambda w: ["push", "keep", "someone/keep-litert"],
        r"pushing to someone/keep-litert failed: .*Connection refused",
        setup=lambda w, s: w.env.update(HF_TOKEN="hf_test", HF_HUB_OFFLINE=""),
    ),
    Case(
        "output onto the stored bundle",
        lambda w: ["convert", str(w.ckpt), *SMALLEST, "-o", str(w.bundle)],
        r"already exists, stored as 'keep'",
    ),
    Case(
        "run a truncated bundle",
        lambda w: ["run", str(w.out / "cut.litertlm"), "-p", "Hi"],
        r"cut\.litertlm",
        setup=_truncated_bundle,
    ),
    Case("run with binary stdin", lambda w: ["run", "keep"], r"binary data", input="\0\1\2"),
    Case("run with --temperature nan", lambda w: ["run", "keep", "-p", "Hi", "--temperature", "nan"], r"finite number"),
    Case("remove a name that is not stored", lambda w: ["models", "rm", "nope"], r"no stored model named 'nope'"),
    *(
        Case(
            f"store name {bad!r}",
            lambda w, bad=bad: ["convert", str(w.ckpt), *SMALLEST, "--name", bad],
            r"cannot be a model name",
        )
        for bad in ("../../evil", "two\nlines", "", "org//name", "/abs")
    ),
    Case(
        "org/name that is neither a directory nor reachable",
        lambda w: ["convert", "no-org/no-model"],
        r"there is no local directory no-org/no-model",
        setup=lambda w, s: w.env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_OFFLINE=""),
    ),
]


def _snapshot(w: World) -> dict[str, str]:
    files = [p for p in (w.home / "models.json", w.bundle) if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, tmp_path: Path, tiny_qwen3: Path, qwen3_bundle: Path) -> None:
    w = World(
        root=tmp_path,
        home=tmp_path / "home",
        out=tmp_path / "out",
        tmp=tmp_path / "tmp",
        ckpt=tmp_path / "ckpt",
        bundle=tmp_path / "home" / "models" / "keep.litertlm",
    )
    for d in (w.out, w.tmp, w.bundle.parent):
        d.mkdir(parents=True)
    shutil.copytree(tiny_qwen3, w.ckpt)
    shutil.copyfile(qwen3_bundle, w.bundle)
    (w.home / "models.json").write_text(
        json.dumps({"version": 1, "models": {"keep": {"path": str(w.bundle), "source": "x", "quantize": "x"}}})
    )
    # Never the real Hub: offline, and a closed loopback endpoint where a case goes online.
    w.env.update(TMPDIR=str(w.tmp), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    with contextlib.ExitStack() as stack:
        case.setup(w, stack)
        before = _snapshot(w)
        env = {k: v for k, v in w.env.items() if v != ""}
        if "HF_HUB_OFFLINE" not in env:
            env["HF_HUB_OFFLINE"] = None  # type: ignore[assignment]  # run_cli drops None values
        result = run_cli(*case.args(w), home=w.home, input=case.input, env=env, cwd=w.out)
        # 1. one line, the expected exit code and message
        lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
        assert result.returncode == case.code, result.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and " — " in lines[0], result.stderr
        assert re.search(case.pattern, lines[0]), lines[0]
        assert "bug in litert" not in lines[0] and "Traceback" not in result.stderr
        # 2. nothing left behind: no temp directories, no partial or new bundles
        tmpdir = Path(w.env["TMPDIR"])
        assert list(tmpdir.glob("litert-*")) == [], list(tmpdir.iterdir())
        left = [p.name for p in w.out.iterdir() if p.name != "cut.litertlm"]
        assert left == [], left
        assert not list(w.home.glob(".*.partial")) if w.home.is_dir() else True
        # 3. no stored data changed
        assert _snapshot(w) == before


def test_a_log_on_a_full_disk_gives_stderr_back(tmp_path: Path) -> None:
    """A library's output captured into a log that cannot take it (its disk full: /dev/full
    here) must not keep fd 2 pointing at the log, or the one line the user is owed is written
    where no one reads it (in CI: a silent exit with TMPDIR full, where Python's streams are
    buffered); and what did not fit is not spilled onto the terminal afterwards."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from litert.console import captured_native_output\n"
        "try:\n"
        "    with captured_native_output(Path('/dev/full')):\n"
        "        sys.stdout.write('Generating Quantization Parameters: 50%')\n"
        "        raise RuntimeError('the library failed')\n"
        "except RuntimeError as exc:\n"
        "    print(f'error: {exc}', file=sys.stderr)\n"
    )
    # (conftest drops PYTHONUNBUFFERED: Python's streams are buffered, as in a shell)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "error: the library failed\n")


def test_verify_with_no_room_for_the_packed_weights(tmp_path: Path, tiny_qwen3: Path, qwen3_bundle: Path) -> None:
    """Teacher-forcing packs the bundle's weights into a cache file in TMPDIR; XNNPACK aborts
    the process (SIGABRT, not a word, its directory left) when that disk fills under it. With
    no room the weights are packed in memory instead, and verify answers as usual."""
    with tmpfs(tmp_path / "small-tmp", "40k") as tmp:
        result = run_cli("verify", tiny_qwen3, qwen3_bundle, home=tmp_path / "home", env={"TMPDIR": str(tmp)})
        assert result.returncode == 0, result.stderr
        assert re.search(r"^parity: top-1 .* — pass$", result.stdout, re.M), result.stdout
        assert list(tmp.glob("litert-*")) == [], list(tmp.iterdir())
