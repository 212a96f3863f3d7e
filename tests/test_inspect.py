"""`litert inspect` on litert's own bundles (provenance checked against the files) and on a
bundle built by the official litert-lm tooling (which carries no litert summary)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from conftest import run_cli


def _inspect(bundle: Path, home: Path) -> dict:
    result = run_cli("inspect", bundle, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_our_bundle_with_provenance_and_parity(qwen3_bundle: Path, session_home: Path, tiny_qwen3) -> None:
    d = _inspect(qwen3_bundle, session_home)
    assert [s["type"] for s in d["sections"]] == ["LlmMetadataProto", "HF_Tokenizer_Zlib", "TFLiteModel"]
    assert sum(s["bytes"] for s in d["sections"]) <= d["size"]
    assert set(d["signatures"]) == {"prefill_8", "prefill_64", "decode"}
    assert d["signatures"]["prefill_64"]["tokens"] == [1, 64] and d["signatures"]["decode"]["tokens"] == [1, 1]
    assert d["prompt"]["user"]["prefix"] == "<|im_start|>user\n" and d["supports_thinking"] is True
    assert d["chat_template"][0].startswith("{%- if tools %}")  # the model's own template, first lines
    inputs = d["provenance"]["inputs"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert inputs[name] == hashlib.sha256((tiny_qwen3 / name).read_bytes()).hexdigest(), name
    versions = d["provenance"]["versions"]
    assert versions["litert"] == "0.1.0" and "litert-torch" in versions and "tensorflow-cpu" in versions
    assert d["parity"]["passed"] is True and d["parity"]["thresholds"]["top1"] == 0.95
    text = run_cli("inspect", qwen3_bundle, home=session_home).stdout
    assert "prefill_64: " in text and "parity:" in text and "sha256:" in text


def test_inspect_a_bundle_built_by_the_official_tooling(qwen3_bundle: Path, tmp_path: Path) -> None:
    builder = str(Path(sys.executable).with_name("litert-lm-builder"))
    unpacked = tmp_path / "unpacked"
    subprocess.run([builder, "unpack", "--input", str(qwen3_bundle), "--output", str(unpacked)], check=True)
    toml = (unpacked / "model.toml").read_text()
    # The same sections, with another author's system metadata and no litert summary.
    toml = "\n".join(line for line in toml.splitlines() if '{ key = "litert"' not in line)
    (unpacked / "other.toml").write_text(toml.replace('value = "litert" }', 'value = "someone else" }'))
    other = tmp_path / "other.litertlm"
    subprocess.run(
        [builder, "toml", "--path", str(unpacked / "other.toml"), "output", "--path", str(other)], check=True
    )
    d = _inspect(other, tmp_path / "home")
    assert d["made_by_litert"] is False and d["provenance"] is None and d["parity"] is None
    assert d["system_metadata"]["Authors"] == "someone else"
    assert set(d["signatures"]) == {"prefill_8", "prefill_64", "decode"}
    text = run_cli("inspect", other, home=tmp_path / "home").stdout
    assert "not litert" in text
