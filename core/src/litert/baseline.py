"""LITERT_CLASSIC_EXPORT=1: load and convert the way upstream's classic flow does.

Only the benchmark sets it, to measure its baseline in the same run
(docs/performance.md): an fp32 copy of the whole state dict, random initialisation
before loading, and litert-torch's `convert_to_tflite` steps.
"""

import os

CLASSIC = os.environ.get("LITERT_CLASSIC_EXPORT", "") not in ("", "0")
