"""litert: Hugging Face LLM checkpoints to LiteRT-LM bundles, through family plugins.

This module is the public surface for plugin authors. It stays import-light: nothing
here pulls in torch, litert_torch, tensorflow or litert_lm, so `litert --help` and
`litert plugins list` answer quickly.
"""

from litert.errors import LitertError
from litert.hookspecs import PLUGIN_API_VERSION, hookimpl
from litert.types import (
    QUANTIZATION_RECIPES,
    Checkpoint,
    Claim,
    ExportSettings,
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
    "PluginManifest",
    "PromptFormat",
    "SamplerDefaults",
    "TokenizerAssets",
    "__version__",
    "hookimpl",
]
