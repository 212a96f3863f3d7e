"""litert-qwen3_5 passes the litert plugin kit."""

from typing import ClassVar

import litert_qwen3_5
from litert.testing import PluginConformance


class TestQwen3_5Conformance(PluginConformance):
    plugin = "qwen3_5"
    checkpoint = litert_qwen3_5.TINY_CHECKPOINT
    expected_answer = "The capital of France is Paris."
    stress_refused: ClassVar[dict[str, str]] = {
        name: f"{rope} RoPE scaling cannot be exported exactly"
        for name, rope in (("rope_linear", "linear"), ("rope_llama3", "llama3"), ("rope_yarn", "yarn"),
                           ("rope_longrope", "longrope"))
    }  # `nox -s stress`  # fmt: skip
