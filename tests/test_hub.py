"""Hub sources, end to end: the real `huggingface_hub` client, real HTTP, a loopback Hub.

`HF_ENDPOINT` points at a server on 127.0.0.1 serving the tiny checkpoints of both
plugins; every request it receives is counted."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from hubserver import FakeHub, read_dir

from conftest import FAST, PARIS_PROMPT, SMALLEST, run_cli

QWEN = "litert-test/Qwen3-tiny"
GEMMA = "google/gemma3-tiny-it"
GOOD_TOKEN = "hf_test_token_with_access"  # a token of the loopback server only
PADDED = "litert-test/Qwen3-tiny-padded"


@pytest.fixture(scope="module")
def hub(tiny_qwen3: Path, tiny_gemma3: Path):
    hub = FakeHub().start()
    qwen_files = read_dir(tiny_qwen3)
    qwen_files["README.md"] = b"---\nlicense: apache-2.0\n---\n# Qwen3-tiny\n"
    qwen_files["logo.png"] = b"\x89PNG not needed for conversion"
    hub.add_repo(QWEN, qwen_files, tags=("v1.0",))
    hub.add_repo(GEMMA, read_dir(tiny_gemma3), gated=True, tokens=(GOOD_TOKEN,))

    import torch
    from safetensors.torch import load_file

    pickled = {k: v for k, v in read_dir(tiny_qwen3).items() if k != "model.safetensors"}
    buf = io.BytesIO()
    torch.save(load_file(str(tiny_qwen3 / "model.safetensors")), buf)
    pickled["pytorch_model.bin"] = buf.getvalue()
    hub.add_repo("litert-test/pickle-only", pickled)
    hub.add_repo("litert-test/no-weights", {k: v for k, v in read_dir(tiny_qwen3).items() if k != "model.safetensors"})
    # Weights padded to 12 MB (in the header's metadata: a tensor the model does not use
    # would be refused), big enough for a resumable transfer.
    from safetensors.torch import save

    state = load_file(str(tiny_qwen3 / "model.safetensors"))
    padded = read_dir(tiny_qwen3)
    padded["model.safetensors"] = save(state, metadata={"format": "pt", "padding": "0" * 12_000_000})
    hub.add_repo(PADDED, padded)
    escaping = read_dir(tiny_qwen3)
    escaping["../../outside.safetensors"] = b"x"
    hub.add_repo("litert-test/escaping", escaping)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf-home")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("litert-home")


def hub_env(hub: FakeHub, hf_home: Path, **extra: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(hf_home),
        "HF_TOKEN": None,
        "HF_HUB_OFFLINE": None,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }
    env.update(extra)
    return env


def seeded(home: Path, *entries: dict) -> Path:
    """A store holding conversions made before (their bundles stay where they are). A test
    whose subject is the download converts the same files with the same settings, so the
    store answers it without an export; that the answer came is itself proof that the bytes
    downloaded hash to the checkpoint's."""
    home.mkdir(parents=True, exist_ok=True)
    models = {f"seed-{i}": dict(entry) for i, entry in enumerate(entries)}
    (home / "models.json").write_text(json.dumps({"version": 1, "models": models}))
    return home


def stored_entry(home: Path, **match: str) -> dict:
    models = json.loads((home / "models.json").read_text())["models"].values()
    return next(e for e in models if all(e.get(k) == v for k, v in match.items()))


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def converted(hub: FakeHub, hf_home: Path, home: Path) -> dict:
    """`litert convert litert-test/Qwen3-tiny` once, with the parity check."""
    hub.reset_counts()
    result = run_cli("convert", QWEN, *SMALLEST, home=home, env=hub_env(hub, hf_home))
    assert result.returncode == 0, result.stderr
    return {"result": result, "requests": list(hub.requests)}


def test_convert_by_hub_id(converted: dict, hub: FakeHub, home: Path) -> None:
    result = converted["result"]
    sha = hub.repos[QWEN].refs["main"]
    assert f"Downloading {QWEN}" in result.stderr
    assert f"commit {sha}" in result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("— pass")  # parity against the downloaded checkpoint
    entry = json.loads((home / "models.json").read_text())["models"][QWEN]
    assert entry["revision"] == sha
    assert entry["source"] == QWEN
    bundle = Path(entry["path"])
    assert bundle == home / "models" / "litert-test" / "Qwen3-tiny.litertlm"
    assert bundle.is_file()
    from litert.bundle import read_bundle

    assert read_bundle(bundle).summary["revision"] == sha
    # Only what a conversion needs was fetched: no README, no images.
    fetched = {p.rsplit("/", 1)[-1] for m, p, _ in converted["requests"] if m == "GET" and "/resolve/" in p}
    assert "README.md" not in fetched and "logo.png" not in fetched
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= fetched


def test_run_hub_id_after_convert(converted: dict, hub: FakeHub, hf_home: Path, home: Path) -> None:
    hub.reset_counts()
    result = run_cli("run", QWEN, "--temperature", "0", input=PARIS_PROMPT + "\n", home=home, env=hub_env(hub, hf_home))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The capital of France is Paris."
    assert hub.count() == 0  # the stored bundle is used; nothing is asked of the Hub


def test_second_convert_reuses_the_cache(converted: dict, hub: FakeHub, hf_home: Path, home: Path) -> None:
    # The same store: read from the Hugging Face cache (nothing downloaded again), then
    # answered by the store (the same source, commit and settings), so no export runs.
    hub.reset_counts()
    result = run_cli("convert", QWEN, *SMALLEST, "--no-verify", home=home, env=hub_env(hub, hf_home))
    assert result.returncode == 0, result.stderr
    assert hub.count("GET", "/resolve/") == 0, hub.requests  # no file downloaded again
    assert "Building the model" not in result.stderr


def test_offline_converts_from_cache(converted: dict, hub: FakeHub, hf_home: Path, home: Path) -> None:
    hub.reset_counts()
    env = hub_env(hub, hf_home, HF_HUB_OFFLINE="1")
    result = run_cli("convert", QWEN, *SMALLEST, "--no-verify", home=home, env=env)
    assert result.returncode == 0, result.stderr
    assert hub.count() == 0
    assert f"commit {hub.repos[QWEN].refs['main']}" in result.stderr  # the branch resolved offline
    entry = json.loads((home / "models.json").read_text())["models"][QWEN]
    assert entry["revision"] == hub.repos[QWEN].refs["main"]


def test_offline_with_nothing_cached(hub: FakeHub, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path / "empty-hf", HF_HUB_OFFLINE="1")
    line = one_error_line(run_cli("convert", QWEN, home=tmp_path / "home", env=env))
    assert "not in the local Hugging Face cache" in line and "offline" in line


def test_revision_tag_is_pinned_to_its_commit(converted: dict, hub: FakeHub, hf_home: Path, home: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    # The tag names the commit `converted` made its bundle from: the store answers, and the
    # new entry must still say which revision was asked for and which commit it is.
    mine = seeded(tmp_path / "home", stored_entry(home, source=QWEN))
    result = run_cli("convert", QWEN, *SMALLEST, "--no-verify", "--revision", "v1.0", home=mine,
                     env=hub_env(hub, hf_home))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Reusing the stored bundle" in result.stderr
    entry = json.loads((mine / "models.json").read_text())["models"][QWEN]
    assert entry["requested_revision"] == "v1.0"
    assert re.fullmatch(r"[0-9a-f]{40}", entry["revision"]) and entry["revision"] == hub.repos[QWEN].refs["v1.0"]
    # `run --revision` finds it by the tag and by the commit.
    for rev in ("v1.0", entry["revision"][:10]):
        run = run_cli("run", QWEN, "--revision", rev, "-p", PARIS_PROMPT, "--temperature", "0",
                      home=mine, env=hub_env(hub, hf_home))  # fmt: skip
        assert run.returncode == 0 and "Paris" in run.stdout, run.stderr


def test_revision_not_found(hub: FakeHub, hf_home: Path, tmp_path: Path) -> None:
    line = one_error_line(
        run_cli("convert", QWEN, "--revision", "v9.9", home=tmp_path / "home", env=hub_env(hub, hf_home))
    )
    assert "revision 'v9.9' does not exist" in line


def test_repository_not_found(hub: FakeHub, hf_home: Path, tmp_path: Path) -> None:
    line = one_error_line(
        run_cli("convert", "litert-test/Qwen3-tinny", home=tmp_path / "home", env=hub_env(hub, hf_home))
    )
    assert (
        "no local directory litert-test/Qwen3-tinny and no repository" in line and "typo" in line and "private" in line
    )


@pytest.mark.parametrize(("token", "words"), [(None, "no token was provided"), ("hf_wrong", "was refused")])
def test_gated_repo_without_access(token, words: str, hub: FakeHub, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path / "hf", HF_TOKEN=token)
    result = run_cli("convert", GEMMA, home=tmp_path / "home", env=env)
    line = one_error_line(result)
    assert "gated" in line and words in line and "accept the licence" in line
    if token:
        assert token not in result.stderr + result.stdout  # never print secrets


def test_gated_repo_with_a_token(hub: FakeHub, tmp_path: Path, gemma3_bundle: Path, session_home: Path) -> None:
    # Downloaded with the token, then answered by a store that holds the same conversion of
    # the same files (the session's tiny Gemma3): the download is the subject here.
    env = hub_env(hub, tmp_path / "hf", HF_TOKEN=GOOD_TOKEN)
    mine = seeded(tmp_path / "home", stored_entry(session_home, path=str(gemma3_bundle.resolve())))
    result = run_cli("convert", GEMMA, *FAST, "--quantize", "none", "--no-verify", home=mine, env=env)
    assert result.returncode == 0, result.stderr
    assert "Reusing the stored bundle" in result.stderr
    assert GOOD_TOKEN not in result.stderr + result.stdout
    run = run_cli("run", GEMMA, "-p", PARIS_PROMPT, "--temperature", "0", home=mine, env=env)
    assert run.stdout.strip() == "The capital of France is Paris.", run.stderr


def test_interrupted_download_resumes(hub: FakeHub, tmp_path: Path) -> None:
    # huggingface_hub writes downloads in 10 MiB chunks and, when the connection drops,
    # resumes from what it has written with a Range request. The padded repository's
    # weights are 12 MB; the server breaks the first transfer off at 11 MB.
    hub.reset_counts()
    hub.cut["model.safetensors"] = 11_000_000
    env = hub_env(hub, tmp_path / "hf")
    result = run_cli("convert", PADDED, *SMALLEST, "--no-verify", home=tmp_path / "home", env=env)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" not in hub.cut  # the cut happened
    assert hub.ranged("Qwen3-tiny-padded/resolve/") == [f"bytes={10 * 1024 * 1024}-"]
    done = list((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    assert (
        done and done[0].read_bytes() == hub.repos[PADDED].commits[hub.repos[PADDED].refs["main"]]["model.safetensors"]
    )


def test_pickle_only_repo_is_refused_with_the_flag_named(hub: FakeHub, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path / "hf")
    line = one_error_line(run_cli("convert", "litert-test/pickle-only", home=tmp_path / "home", env=env))
    assert "pickle" in line and "--allow-pickle" in line
    assert hub.count("GET", "pickle-only/resolve/pytorch_model.bin") == 0  # not even downloaded
    result = run_cli("convert", "litert-test/pickle-only", *SMALLEST, "--allow-pickle", home=tmp_path / "home", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("— pass")


def test_repo_without_weights(hub: FakeHub, tmp_path: Path) -> None:
    line = one_error_line(
        run_cli("convert", "litert-test/no-weights", home=tmp_path / "home", env=hub_env(hub, tmp_path / "hf"))
    )
    assert "no model weights" in line


def test_file_names_escaping_the_cache_are_refused(hub: FakeHub, tmp_path: Path) -> None:
    result = run_cli("convert", "litert-test/escaping", home=tmp_path / "home", env=hub_env(hub, tmp_path / "hf"))
    line = one_error_line(result)
    assert "escape" in line
    assert hub.count("GET", "escaping/resolve/") == 0
    assert not (tmp_path / "outside.safetensors").exists()


def test_run_converts_a_hub_id_first(hub: FakeHub, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path / "hf")
    result = run_cli("run", QWEN, "-p", PARIS_PROMPT, "--temperature", "0", home=tmp_path / "home", env=env)
    assert result.returncode == 0, result.stderr
    assert "No stored bundle for litert-test/Qwen3-tiny; converting it first." in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "The capital of France is Paris."


BUNDLE_REPO = "litert-community/Qwen3-tiny"
TWO_BUNDLES = "litert-community/two-bundles"


@pytest.fixture(scope="module")
def bundle_repos(hub: FakeHub, qwen3_bundle: Path, gemma3_bundle: Path) -> FakeHub:
    data = qwen3_bundle.read_bytes()
    hub.add_repo(BUNDLE_REPO, {"Qwen3-tiny.litertlm": data, "README.md": b"# a pre-converted bundle\n"})
    hub.add_repo(TWO_BUNDLES, {"q.litertlm": data, "g.litertlm": gemma3_bundle.read_bytes()})
    return hub


def test_pull_and_run_a_pre_converted_bundle(bundle_repos: FakeHub, tmp_path: Path) -> None:
    env = hub_env(bundle_repos, tmp_path / "hf")
    home = tmp_path / "home"
    pulled = run_cli("pull", BUNDLE_REPO, home=home, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "run it with: litert run litert-community/Qwen3-tiny" in pulled.stdout
    entry = json.loads((home / "models.json").read_text())["models"][BUNDLE_REPO]
    assert entry["pulled"] is True and re.fullmatch(r"[0-9a-f]{40}", entry["revision"])
    run = run_cli("run", BUNDLE_REPO, "-p", PARIS_PROMPT, "--temperature", "0", home=home, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "The capital of France is Paris."
    # `litert run` on a repository never pulled: pulled first (no conversion), then run.
    fresh = run_cli("run", BUNDLE_REPO, "-p", PARIS_PROMPT, "--temperature", "0", home=tmp_path / "fresh", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert "pulling its pre-converted bundle" in fresh.stderr and "Building the model" not in fresh.stderr
    assert fresh.stdout.strip() == "The capital of France is Paris."


def test_a_repository_with_several_bundles_asks_which(bundle_repos: FakeHub, tmp_path: Path) -> None:
    env = hub_env(bundle_repos, tmp_path / "hf")
    line = one_error_line(run_cli("pull", TWO_BUNDLES, home=tmp_path / "home", env=env))
    assert "holds 2 bundles: g.litertlm, q.litertlm" in line and "--file" in line
    chosen = run_cli("pull", TWO_BUNDLES, "--file", "g.litertlm", home=tmp_path / "home", env=env)
    assert chosen.returncode == 0, chosen.stderr
    assert f"{TWO_BUNDLES}/g" in json.loads((tmp_path / "home" / "models.json").read_text())["models"]
    assert f"run it with: litert run {TWO_BUNDLES}/g\n" in chosen.stdout  # the name it was stored under
    line = one_error_line(run_cli("pull", QWEN, home=tmp_path / "home", env=env))
    assert "holds no .litertlm bundle (it holds a checkpoint)" in line and f"litert convert {QWEN}" in line


def test_a_cached_bundle_repository_runs_offline(bundle_repos: FakeHub, tmp_path: Path) -> None:
    """Once in the Hugging Face cache, a bundle repository is a bundle offline too: `run`
    takes it (no attempt to convert it as a checkpoint), `pull` stores it; a repository not
    cached is refused in one line that is about pulling, not about directories."""
    env = hub_env(bundle_repos, tmp_path / "hf")
    assert run_cli("pull", BUNDLE_REPO, home=tmp_path / "online", env=env).returncode == 0
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    run = run_cli("run", BUNDLE_REPO, "-p", PARIS_PROMPT, "--temperature", "0", home=tmp_path / "home", env=offline)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "The capital of France is Paris."
    pulled = run_cli("pull", BUNDLE_REPO, home=tmp_path / "other", env=offline)
    assert pulled.returncode == 0 and f"run it with: litert run {BUNDLE_REPO}" in pulled.stdout, pulled.stderr
    line = one_error_line(run_cli("pull", TWO_BUNDLES, home=tmp_path / "home", env=offline))
    assert "offline, and no bundle of litert-community/two-bundles is in the Hugging Face cache" in line


def test_a_damaged_cached_bundle_is_refused_offline_and_fetched_again_online(
    bundle_repos: FakeHub, tmp_path: Path
) -> None:
    """The Hugging Face cache trusts its blobs; a bundle whose cached bytes no longer match
    their sha256 (a disk error, an editor) is never stored as if it were whole."""
    env = hub_env(bundle_repos, tmp_path / "hf")
    assert run_cli("pull", BUNDLE_REPO, home=tmp_path / "first", env=env).returncode == 0
    (blob,) = [p for p in (tmp_path / "hf").rglob("blobs/*") if len(p.name) == 64]
    with open(blob, "r+b") as f:  # same size, other bytes
        f.seek(blob.stat().st_size // 2)
        f.write(b"\xff" * 64)
    home = tmp_path / "home"
    line = one_error_line(run_cli("pull", BUNDLE_REPO, home=home, env={**env, "HF_HUB_OFFLINE": "1"}))
    assert "the cached Qwen3-tiny.litertlm of litert-community/Qwen3-tiny is damaged" in line
    assert not (home / "models.json").is_file() or BUNDLE_REPO not in (home / "models.json").read_text()
    pulled = run_cli("pull", BUNDLE_REPO, home=home, env=env)  # online: fetched again
    assert pulled.returncode == 0, pulled.stderr
    run = run_cli("run", BUNDLE_REPO, "-p", PARIS_PROMPT, "--temperature", "0", home=home, env=env)
    assert run.returncode == 0 and run.stdout.strip() == "The capital of France is Paris.", run.stderr


WRITER = "hf_test_token_that_may_write"  # a token of the loopback server only
PUSHED = "someone/Qwen3-tiny-litert"


def test_push_needs_a_token_that_may_write(converted: dict, hub: FakeHub, hf_home: Path, home: Path) -> None:
    env = hub_env(hub, hf_home)
    line = one_error_line(run_cli("push", QWEN, PUSHED, home=home, env=env))
    assert "needs a Hugging Face token" in line and "HF_TOKEN" in line
    refused = run_cli("push", QWEN, PUSHED, home=home, env={**env, "HF_TOKEN": "hf_not_a_writer"})
    line = one_error_line(refused)
    assert "refused to let this token write to someone/Qwen3-tiny-litert (HTTP 403)" in line
    assert "hf_not_a_writer" not in refused.stdout + refused.stderr
    assert PUSHED not in hub.repos
    line = one_error_line(run_cli("push", "no-such-model", PUSHED, home=home, env=env))
    assert "no stored model named 'no-such-model'" in line


def test_push_uploads_the_bundle_with_a_model_card(converted: dict, hub: FakeHub, hf_home: Path, home: Path,
                                                   tiny_qwen3: Path, tmp_path: Path) -> None:  # fmt: skip
    import hashlib

    hub.writers.add(WRITER)
    hub.auth.clear()
    env = hub_env(hub, hf_home, HF_TOKEN=WRITER)
    result = run_cli("push", QWEN, PUSHED, "--private", home=home, env=env)
    assert result.returncode == 0, (result.stderr, hub.requests[-6:])
    assert f"Pushed {QWEN} to {hub.url}/{PUSHED}" in result.stdout and f"litert run {PUSHED}" in result.stdout
    assert WRITER not in result.stdout + result.stderr  # the token is never printed
    assert hub.auth and all(a == f"Bearer {WRITER}" for a in hub.auth if a)
    repo = hub.repos[PUSHED]
    assert repo.private
    files = repo.commits[repo.refs["main"]]
    stored = Path(json.loads((home / "models.json").read_text())["models"][QWEN]["path"])
    assert files["Qwen3-tiny.litertlm"] == stored.read_bytes()  # through the LFS batch API, sha256-checked
    card = files["README.md"].decode()
    source_commit = hub.repos[QWEN].refs["main"]
    weights_sha = hashlib.sha256((tiny_qwen3 / "model.safetensors").read_bytes()).hexdigest()
    for needle in (
        "license: apache-2.0",  # carried over from the source repository's card
        f"base_model: {QWEN}",
        f"at commit `{source_commit}`",
        f"litert run {PUSHED}",
        f"litert-lm run --from-huggingface-repo {PUSHED} Qwen3-tiny.litertlm",
        "| quantization | dynamic_int8 |",
        "| top-1 agreement | 100.0 % | ≥ 95 % |",
        "| verdict | **pass** | |",
        f'"model.safetensors": "{weights_sha}"',
        hashlib.sha256(stored.read_bytes()).hexdigest(),
    ):
        assert needle in card, needle
    # What was pushed is what anyone can pull and run.
    run = run_cli("run", PUSHED, "-p", PARIS_PROMPT, "--temperature", "0", home=tmp_path / "elsewhere", env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "The capital of France is Paris."


def test_push_of_a_local_conversion_says_the_licence_is_unknown(
    hub: FakeHub, qwen3_bundle: Path, session_home: Path, tmp_path: Path
) -> None:
    hub.writers.add(WRITER)
    env = hub_env(hub, tmp_path / "hf", HF_TOKEN=WRITER)
    result = run_cli("push", "Qwen3-tiny", "someone/local-qwen", home=session_home, env=env)
    assert result.returncode == 0, result.stderr
    assert "warning: the source's licence is unknown" in result.stderr
    card = hub.repos["someone/local-qwen"].commits[hub.repos["someone/local-qwen"].refs["main"]]["README.md"].decode()
    assert "license: unknown" in card and "a local checkpoint (`Qwen3-tiny`)" in card
    assert str(Path.home()) not in card and "site-packages" not in card  # no local paths published
    again = run_cli("push", "Qwen3-tiny", "someone/local-qwen", "--license", "mit", home=session_home, env=env)
    assert again.returncode == 0, again.stderr
    card = hub.repos["someone/local-qwen"].commits[hub.repos["someone/local-qwen"].refs["main"]]["README.md"].decode()
    assert "license: mit" in card


# Last: it removes the stored conversion the tests above share.
def test_models_list_and_rm(converted: dict, hub: FakeHub, home: Path) -> None:
    listing = run_cli("models", "list", home=home)
    assert listing.returncode == 0
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:6] == ["NAME", "SOURCE", "REVISION", "QUANTIZE", "SIZE", "PARITY"]
    row = next(r for r in rows if r.startswith(QWEN))
    assert hub.repos[QWEN].refs["main"][:12] in row and "pass" in row
    data = json.loads(run_cli("models", "list", "--json", home=home).stdout)
    bundle = Path(data[QWEN]["path"])
    removed = run_cli("models", "rm", QWEN, home=home)
    assert removed.returncode == 0 and not bundle.exists()
    assert QWEN not in json.loads(run_cli("models", "list", "--json", home=home).stdout)
    again = run_cli("models", "rm", QWEN, home=home)
    assert again.returncode == 1 and "no stored model named" in again.stderr


def test_an_endpoint_that_never_answers_times_out_in_one_line(tmp_path: Path) -> None:
    """A server that accepts connections and never replies: `pull` and `convert` give up after
    LITERT_HUB_TIMEOUT seconds with one line, instead of waiting for ever."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nobody ever answers
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}", "HF_HOME": str(tmp_path / "hf"),
               "HF_TOKEN": None, "HF_HUB_OFFLINE": None, "LITERT_HUB_TIMEOUT": "3"}  # fmt: skip
        for command in ("pull", "convert"):
            started = time.monotonic()
            line = one_error_line(run_cli(command, "some-org/some-model", home=tmp_path / "home", env=env))
            assert "did not answer within 3 s" in line, line
            assert time.monotonic() - started < 120
