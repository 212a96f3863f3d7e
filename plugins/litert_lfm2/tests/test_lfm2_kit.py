"""litert-lfm2 passes the litert plugin kit."""

from typing import ClassVar

import litert_lfm2
from litert.testing import PluginConformance


class TestLfm2Conformance(PluginConformance):
    plugin = "lfm2"
    checkpoint = litert_lfm2.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
    stress_refused: ClassVar[dict[str, str]] = {
        "rope_longrope": "longrope RoPE scaling cannot be exported"
    }  # `nox -s stress`
