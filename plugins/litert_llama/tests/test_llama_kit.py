"""litert-llama passes the litert plugin kit."""

import litert_llama
from litert.testing import PluginConformance


class TestLlamaConformance(PluginConformance):
    plugin = "llama"
    checkpoint = litert_llama.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
