"""litert-qwen3 passes the litert plugin kit."""

import litert_qwen3
from litert.testing import PluginConformance


class TestQwen3Conformance(PluginConformance):
    plugin = "qwen3"
    checkpoint = litert_qwen3.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
