"""Shared fixtures: the installed `litert` command, an isolated LITERT_HOME, and the tiny
Qwen3 bundle converted once per test session through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LITERT = str(Path(sys.executable).with_name("litert"))
HANG = float(os.environ.get("LITERT_TEST_HANG_SECONDS", "3600"))
"""How long a command may run before a test calls it hung: a guard against hangs, never a
measure of this machine's speed (a loaded 2-core machine takes minutes for what a quiet
one does in seconds); speed is measured in benchmarks."""
PARIS_PROMPT = "What is the capital of France?"

# Small export settings keep conversions in tests fast; the defaults are tested in
# test_plan (without exporting), and full-size runs belong in benchmarks.
FAST = ("--prefill-lengths", "8,64", "--kv-cache-max-len", "256")
# One prefill signature and a small cache, for tests about something other than the export
# (prompts longer than 8 tokens are prefilled in chunks by the runtime).
SMALLEST = ("--prefill-lengths", "8", "--kv-cache-max-len", "128")

# The suite runs two test workers on the machine's two cores, so a conversion lowering on a
# second process would only wait for a core; conversions here stay on one process. The
# two-process export is tested where it is the subject (test_streaming) and in every
# plugin's kit conversion, which asks for it explicitly.
os.environ.setdefault("LITERT_EXPORT_PROCESSES", "1")
# Python's streams as a user's shell has them (buffered), wherever the suite runs: a fault
# that only shows with buffered output (a flush into a full disk) passed on a machine with
# PYTHONUNBUFFERED set and failed in CI.
os.environ.pop("PYTHONUNBUFFERED", None)


def make_plugin_env(env_dir: Path, packages: list[Path]) -> Path:
    """A venv that sees this test environment's packages and adds `packages`, installed
    with pip as real distributions (entry points and all); returns its python."""
    import site
    import venv

    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    own = subprocess.run([py, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True)
    base = site.getsitepackages()[0]
    # Process the base environment's site dir (and its .pth files) after the venv's own.
    Path(own.stdout.strip(), "zz_base_env.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    if packages:
        result = subprocess.run(
            [py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
             *map(str, packages)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    return py


def run_cli(
    *args: str | os.PathLike[str],
    home: Path,
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = HANG,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `litert` console script with LITERT_HOME pointed at `home`."""
    env = {**os.environ, "LITERT_HOME": str(home), **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [LITERT, *map(str, args)],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_qwen3() -> Path:
    import litert_qwen3

    return litert_qwen3.TINY_CHECKPOINT


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("litert-home")


def shared_conversion(
    tmp_path_factory: pytest.TempPathFactory, session_home: Path, key: str, *args: str | os.PathLike[str]
) -> tuple[Path, subprocess.CompletedProcess[str] | None]:
    """`litert convert *args` run once for the whole run, whichever test worker asks first
    (the others wait on a file lock, then reuse it): a session fixture is per worker under
    xdist, and two workers converting the same tiny model was a conversion wasted. The
    entry it stored is copied into this worker's `session_home`. Answers the bundle and, to
    the worker that converted, the command's result."""
    import json

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' base directories are siblings in the run's
    where = root / "shared-conversions" / key
    where.mkdir(parents=True, exist_ok=True)
    result = None
    with FileLock(str(where) + ".lock"):
        marker = where / "bundle"
        if not marker.is_file():
            (where / "out").mkdir(exist_ok=True)  # the bundle alone in its directory, as a user's cwd
            result = run_cli("convert", *args, home=where / "home", cwd=where / "out")
            assert result.returncode == 0, result.stderr
            stored = json.loads((where / "home" / "models.json").read_text())["models"]
            marker.write_text(next(e["path"] for e in stored.values()))
    bundle = Path(marker.read_text())
    index_path = session_home / "models.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"version": 1, "models": {}}
    index["models"].update(json.loads((where / "home" / "models.json").read_text())["models"])
    index_path.write_text(json.dumps(index, indent=2))
    return bundle, result


@pytest.fixture(scope="session")
def qwen3_bundle(tmp_path_factory: pytest.TempPathFactory, session_home: Path, tiny_qwen3: Path) -> Path:
    """The tiny Qwen3 converted with the default recipe (dynamic_int8) through `litert convert`."""
    bundle, _ = shared_conversion(tmp_path_factory, session_home, "qwen3", tiny_qwen3, *FAST)
    assert bundle.name == "Qwen3-tiny.litertlm" and bundle.is_file()
    return bundle


@pytest.fixture
def spec_dir(tmp_path: Path, tiny_qwen3: Path, tiny_gemma3: Path) -> Path:
    """A directory for a batch spec, holding the two tiny checkpoints as ./Qwen3-tiny and ./Gemma3-tiny."""
    (tmp_path / "Qwen3-tiny").symlink_to(tiny_qwen3)
    (tmp_path / "Gemma3-tiny").symlink_to(tiny_gemma3)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_gemma3() -> Path:
    import litert_gemma3

    return litert_gemma3.TINY_CHECKPOINT


@pytest.fixture(scope="session")
def gemma3_bundle(tmp_path_factory: pytest.TempPathFactory, session_home: Path, tiny_gemma3: Path) -> Path:
    """The tiny Gemma3 converted without quantization (fp32) through `litert convert`."""
    bundle, result = shared_conversion(
        tmp_path_factory, session_home, "gemma3", tiny_gemma3, *FAST, "--quantize", "none",
        "-o", "gemma3-tiny-f32.litertlm",
    )  # fmt: skip
    assert result is None or "gemma3 via litert-gemma3" in result.stderr
    return bundle


# The files that take longest (a minute or more each), handed out first: with `--dist
# loadfile --no-loadscope-reorder` (the nox session's) a worker takes whole files in
# collection order, so a long file collected last would run alone at the end while the
# other worker idles. (xdist's default order is by the number of tests in a file, not time.)
SLOW_FIRST = ("test_hub.py", "test_verify.py", "test_reliability.py", "test_third_party.py", "test_batch_ray.py",
              "test_native.py", "test_lfm2.py", "test_qwen3_5.py", "test_batch.py", "test_streaming.py",
              "test_reproducible.py", "test_qwen3_end_to_end.py", "test_faults.py", "test_plugin_loading.py",
              "test_progress.py", "test_serve.py")  # fmt: skip


# `nox -s quick` (pytest -m quick): the plugin contract, the model code against transformers
# (stress variants, at the torch level) and the command line's refusals; no conversion.
QUICK_FILES = ("test_hooks.py", "test_plugin_contract.py", "test_public_api.py", "test_cli_startup.py",
               "test_cli_quick.py", "test_qwen3_model.py", "test_chat_template.py", "test_judgment.py")  # fmt: skip
QUICK_KIT_TESTS = ("stress_variant", "loads", "claims", "is_valid", "are_valid", "build_model")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: part of the quick loop (nox -s quick)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))
    for item in items:
        kit = item.path.name.endswith("_kit.py") and any(t in item.name for t in QUICK_KIT_TESTS)
        if item.path.name in QUICK_FILES or kit:
            item.add_marker(pytest.mark.quick)
