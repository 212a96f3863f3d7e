"""Progress inside the export: a live display on a terminal (checked through a real
pseudo-terminal), plain lines otherwise, and `--json` for scripts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

from conftest import LITERT, SMALLEST, run_cli


def test_live_display_on_a_terminal(tmp_path: Path, tiny_qwen3: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "LITERT_HOME": str(tmp_path / "home"), "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [LITERT, "convert", str(tiny_qwen3), *SMALLEST, "--no-verify", "-o", str(tmp_path / "t.litertlm")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=300) == 0, seen.decode(errors="replace")
    os.close(master)
    text = seen.decode(errors="replace")
    assert "\x1b[" in text, "no live display on a terminal"
    assert "tracing prefill_8" in text and "elapsed" in text and "left" in text
    assert "[4/6] Exporting 1 prefill + 1 decode signatures" in text and "      done (" in text


def test_plain_lines_and_json_when_not_a_terminal(tmp_path: Path, tiny_qwen3: Path) -> None:
    out = tmp_path / "t.litertlm"
    result = run_cli("convert", tiny_qwen3, *SMALLEST, "--json", "-o", out, home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr
    for line in ("      tracing prefill_8 (1/4) ... ", "      tracing decode (2/4) ... ", "      quantizing"):
        assert line in result.stderr
    data = json.loads(result.stdout)
    assert data["path"] == str(out) and data["size"] == out.stat().st_size
    assert data["family"] == "qwen3" and data["quantize"] == "dynamic_int8"
    assert data["passed"] is True and data["parity"]["top1"] > 0.9
