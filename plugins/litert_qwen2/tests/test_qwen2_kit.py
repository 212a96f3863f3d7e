"""litert-qwen2 passes the litert plugin kit."""

import litert_qwen2
from litert.testing import PluginConformance


class TestQwen2Conformance(PluginConformance):
    plugin = "qwen2"
    checkpoint = litert_qwen2.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
