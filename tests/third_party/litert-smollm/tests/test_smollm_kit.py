"""litert-smollm passes litert's plugin kit."""

import litert_smollm

from litert.testing import PluginConformance


class TestSmollmConformance(PluginConformance):
    plugin = "smollm"
    checkpoint = litert_smollm.TINY_CHECKPOINT
    expected_answer = "Paris"
