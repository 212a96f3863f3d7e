"""litert-phi3 passes the litert plugin kit."""

import litert_phi3
from litert.testing import PluginConformance


class TestPhi3Conformance(PluginConformance):
    plugin = "phi3"
    checkpoint = litert_phi3.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
