"""litert-gemma3 passes the litert plugin kit."""

from typing import ClassVar

import litert_gemma3
from litert.testing import PluginConformance


class TestGemma3Conformance(PluginConformance):
    plugin = "gemma3"
    checkpoint = litert_gemma3.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
    # Every Gemma3 release ties its LM head; litert-gemma3 refuses an untied one with a message.
    stress_refused: ClassVar[dict[str, str]] = {"untied": "untied LM head"}
