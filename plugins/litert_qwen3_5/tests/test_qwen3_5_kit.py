"""litert-qwen3_5 passes the litert plugin kit."""

import litert_qwen3_5
from litert.testing import PluginConformance


class TestQwen3_5Conformance(PluginConformance):
    plugin = "qwen3_5"
    checkpoint = litert_qwen3_5.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
