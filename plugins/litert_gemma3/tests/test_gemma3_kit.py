"""litert-gemma3 passes the litert plugin kit."""

import litert_gemma3
from litert.testing import PluginConformance


class TestGemma3Conformance(PluginConformance):
    plugin = "gemma3"
    checkpoint = litert_gemma3.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
