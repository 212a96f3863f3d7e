"""The plugin API is exactly what the public modules' `__all__` say, and every public name is
documented in docs/plugin-api.md (pluggy's pattern: a small explicit surface, the rest private)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import litert

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugin-api.md"


@pytest.mark.parametrize("module", litert.PUBLIC_MODULES)
def test_public_module_declares_its_surface(module: str) -> None:
    mod = importlib.import_module(module)
    assert isinstance(getattr(mod, "__all__", None), list), f"{module} has no __all__"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name}, which it does not define"


@pytest.mark.parametrize("module", litert.PUBLIC_MODULES)
def test_every_public_name_is_documented(module: str) -> None:
    docs = DOCS.read_text()
    section = docs.split(f"\n## `{module}`")
    assert len(section) == 2, f"docs/plugin-api.md has no section ## `{module}`"
    body = section[1].split("\n## ")[0]
    for name in importlib.import_module(module).__all__:
        assert re.search(rf"`{re.escape(name)}[`(.\[]", body), f"docs/plugin-api.md does not document {module}.{name}"


def test_plugin_modules_import_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, litert, litert.hf, litert.prompts, litert.classic, litert_qwen2, litert_phi3, litert_gemma3;"
        "print(','.join(m for m in ('torch', 'litert_torch', 'tensorflow', 'litert_lm', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing the plugin API pulls in {out}"
