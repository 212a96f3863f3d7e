"""litert: Hugging Face LLM checkpoints to LiteRT-LM bundles, through family plugins.

This module is the public surface for plugin authors (with the modules named in
PUBLIC_MODULES). It stays import-light: nothing
here pulls in torch, litert_torch, tensorflow or litert_lm, so `litert --help` and
`litert plugins list` answer quickly.
"""

from litert import hf, prompts
from litert.errors import LitertError
from litert.hookspecs import PLUGIN_API_VERSION, hookimpl
from litert.types import (
    QUANTIZATION_RECIPES,
    Checkpoint,
    Claim,
    ExportSettings,
    NativeExport,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    TokenizerAssets,
)

__version__ = "0.1.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "QUANTIZATION_RECIPES",
    "Checkpoint",
    "Claim",
    "ExportSettings",
    "LitertError",
    "NativeExport",
    "PluginManifest",
    "PromptFormat",
    "SamplerDefaults",
    "TokenizerAssets",
    "__version__",
    "hf",
    "hookimpl",
    "prompts",
]

PUBLIC_MODULES = ("litert", "litert.hf", "litert.prompts", "litert.classic", "litert.modeling", "litert.stress",
                  "litert.testing", "litert.tiny")  # fmt: skip
"""The plugin API: these modules' `__all__` is the whole contract (docs/writing-plugins.md);
every other module is private to the core and may change in any release."""
