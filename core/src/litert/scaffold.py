"""`litert plugins new NAME`: a new family plugin package that installs and passes the kit.

The package is a plugin on API 2: a manifest, a `prompt_format` hook reading the
checkpoint's own turn markers, and a `litert.classic` model class with the knobs of the
shape its architecture has (SHAPES: Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma3; any other
architecture starts from the Llama shape, and the kit's stress variants say where it
differs). A tiny checkpoint of that architecture is trained here (`litert.tiny`), so the
package ships a model and passes its kit from the start.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from litert import PLUGIN_API_VERSION, __version__
from litert.errors import LitertError

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "litert-{name}"
version = "0.1.0"
description = "{title} family plugin for litert."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["litert>={core_major_minor},<{core_next}"]

[project.entry-points.litert]
{name} = "litert_{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
litert_{module} = ["tiny/*.py", "tiny/{title}-tiny/*"]
"""

README = """\
# litert-{name}

A [litert](https://pypi.org/project/litert/) family plugin: converts `{architecture}`
checkpoints into LiteRT-LM bundles.

    pip install -e .
    litert plugins list
    litert convert ./my-checkpoint
    pytest tests        # litert's plugin kit: claim, hooks, convert, run, parity

The tiny checkpoint in `src/litert_{module}/tiny/{title}-tiny` is rebuilt by
`python src/litert_{module}/tiny/build_tiny.py`.
"""

INIT = """\
\"\"\"litert-{name}: the {title} family plugin for litert (plugin API {api_version}).

Import-light: the model (model.py) is imported by litert only when it builds.
\"\"\"

from __future__ import annotations

from pathlib import Path

from litert import Claim, PluginManifest, PromptFormat, hookimpl, prompts

TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "{title}-tiny"

LITERT_PLUGIN = PluginManifest(
    families=("{name}",),
    architectures=("{architecture}",),
    api_version={api_version},
    tiny_checkpoint=TINY_CHECKPOINT,
    model="litert_{module}.model:{title}",
)


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    # The turn format whose markers the checkpoint carries (litert.prompts); write your
    # family's own PromptFormat here if it has none of the presets.
    return prompts.from_checkpoint(claim.checkpoint)
"""

MODEL = """\
\"\"\"{title} on litert's classic decoder:
{shape_doc}.

The kit's stress variants compare this model with transformers on re-drawn weights and
every config variant; change a knob or override a method of the base class where your
architecture computes something else (see docs/plugin-api.md, litert.classic).
\"\"\"

from __future__ import annotations

from litert.classic import {base}


class {title}({base}):
{knobs}
"""

BUILD_TINY = """\
\"\"\"Rebuild the tiny {title} checkpoint: python build_tiny.py\"\"\"

from pathlib import Path

from litert.tiny import {tiny_format}, train_tiny

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "{title}-tiny"
    train_tiny(out, "{architecture}", {tiny_format}, config={tiny_config})
"""


@dataclasses.dataclass(frozen=True)
class Shape:
    """What `plugins new` writes for one architecture."""

    doc: str
    base: str = "ClassicDecoder"
    knobs: tuple[str, ...] = ()
    tiny_format: str = "CHATML"
    tiny_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    """Stress variants the base class refuses on purpose (the kit's `stress_refused`)."""


LLAMA = Shape("the Llama shape: nothing to change")
SHAPES: dict[str, Shape] = {
    "LlamaForCausalLM": LLAMA,
    "MistralForCausalLM": Shape(
        "the Llama shape with a window on every layer",
        knobs=("windowed = True  # sliding_window applies to every layer",),
        tiny_config={"sliding_window": 512},
    ),
    "Qwen2ForCausalLM": Shape(
        "the Llama shape with q/k/v biases and none on o_proj",
        knobs=("qkv_bias = True", "output_bias = False"),
    ),
    "Qwen3ForCausalLM": Shape(
        "the Llama shape with RMSNorm on queries and keys",
        knobs=("qk_norm = True", "qkv_transpose_before_split = True"),
    ),
    "Phi3ForCausalLM": Shape(
        "fused qkv_proj and gate_up_proj, a window on every layer; partial rotary and LongRoPE from config.json",
        knobs=(
            "windowed = True",
            'fused_qkv = "model.layers.{}.self_attn.qkv_proj"',
            'fused_gate_up = "model.layers.{}.mlp.gate_up_proj"',
        ),
        tiny_format="PHI",
        tiny_config={"partial_rotary_factor": 0.75, "sliding_window": 512},
    ),
    "Gemma3ForCausalLM": Shape(
        "the Gemma shape: zero-centred norms around attention and MLP, scaled embeddings, local/global layers",
        base="GemmaDecoder",
        refused={"untied": "untied LM head"},
        tiny_config={
            "layer_types": ["sliding_attention", "full_attention"],
            "sliding_window": 16,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
        },
    ),
}
"""Architectures whose shape the scaffold knows; others start from LLAMA."""


TEST = '''\
"""litert-{name} passes litert's plugin kit."""

import litert_{module}

from litert.testing import PluginConformance


class Test{title}Conformance(PluginConformance):
    plugin = "{name}"
    checkpoint = litert_{module}.TINY_CHECKPOINT
    expected_answer = "Paris"{stress_refused}
'''


def create(name: str, directory: Path, architecture: str = "LlamaForCausalLM", build_tiny: bool = True) -> Path:
    """Write the package `litert-NAME` into `directory`; return its root."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise LitertError(
            f"plugin name {name!r} must be lower-case letters, digits and underscores, starting with a letter",
            "e.g. `litert plugins new llama`",
        )
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*ForCausalLM", architecture):
        raise LitertError(
            f"{architecture!r} is not a causal-LM architecture name", "e.g. --architecture LlamaForCausalLM"
        )
    root = directory / f"litert-{name}"
    if root.exists():
        raise LitertError(f"{root} already exists", "choose another --dir or remove it")
    major, minor, *_ = (int(p) for p in __version__.split("."))
    shape = SHAPES.get(architecture, LLAMA)
    doc = shape.doc if architecture in SHAPES else f"{architecture} unknown to the scaffold: the Llama shape, to adapt"
    fields = {
        "name": name,
        "module": name,
        "title": "".join(part.capitalize() for part in name.split("_")),
        "architecture": architecture,
        "shape_doc": doc,
        "base": shape.base,
        "knobs": "\n".join(f"    {k}" for k in shape.knobs) or "    pass",
        "tiny_format": shape.tiny_format,
        "tiny_config": repr(shape.tiny_config),
        "stress_refused": f"\n    stress_refused = {shape.refused!r}" if shape.refused else "",
        "api_version": PLUGIN_API_VERSION,
        "core_major_minor": f"{major}.{minor}",
        "core_next": f"{major}.{minor + 1}",
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/litert_{name}/__init__.py": INIT,
        f"src/litert_{name}/model.py": MODEL,
        f"src/litert_{name}/tiny/build_tiny.py": BUILD_TINY,
        f"tests/test_{name}_kit.py": TEST,
    }
    tmp = directory / f".litert-{name}.partial"
    try:
        for rel, template in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(**fields))
        if build_tiny:
            script = tmp / f"src/litert_{name}/tiny/build_tiny.py"
            print(
                f"Training the tiny {architecture} checkpoint the package ships (about a minute)...",
                file=sys.stderr,
                flush=True,
            )
            result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
                raise LitertError(
                    f"building the tiny {architecture} checkpoint failed: {tail[0]}",
                    f"does transformers know {architecture}? pass --no-tiny and add a tiny checkpoint yourself",
                )
        tmp.rename(root)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return root
