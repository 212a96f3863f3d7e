"""Running the .tflite inside a bundle token by token, as the LiteRT-LM runtime does.

The runtime only exposes text; to measure a bundle against the transformers reference
token by token we drive the model's own signatures through ai-edge-litert's
interpreter: a prefill signature for the prompt, then the decode signature one token at
a time, with the KV cache carried between calls and the attention mask built the way
the runtime builds it (causal over the cache; sliding windows are applied inside the
model from `input_pos`).

Bundles made by the transformers-native exporter are run the same way: their other state
(LFM2's convolution states) rides under the same `kv_cache_` names, and when the token
embedders are models of their own (Gemma 4), each `...embeddings` input of a signature
is computed by the matching embedder signature (`decode_embedder`,
`prefill_per_layer_embedder_64`, ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from litert.bundle import read_bundle
from litert.errors import LitertError


class BundleModel:
    """The prefill and decode signatures of a bundle's model, with an explicit KV cache."""

    def __init__(self, path: Path, num_threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        info = read_bundle(path)
        models = info.models()
        if "tf_lite_prefill_decode" not in models:
            raise LitertError(f"{path} has no prefill/decode model", "reconvert the model")
        self.interpreter = Interpreter(
            model_content=info.read(models.pop("tf_lite_prefill_decode")), num_threads=num_threads
        )
        self.embedders = [Interpreter(model_content=info.read(sec), num_threads=num_threads) for sec in models.values()]
        self._inputs: dict[str, set[str]] = {}
        signatures = self.interpreter.get_signature_list()
        self.prefill_lengths = sorted(
            int(m.group(1)) for name in signatures if (m := re.fullmatch(r"prefill_(\d+)", name))
        )
        if "decode" not in signatures or not self.prefill_lengths:
            raise LitertError(f"{path} has no prefill/decode signatures", "reconvert the model")
        self.decode = self.interpreter.get_signature_runner("decode")
        details = self.decode.get_input_details()
        self.kv_names = sorted(k for k in details if k.startswith("kv_cache_"))
        self.kv_shapes = {k: tuple(details[k]["shape"]) for k in self.kv_names}
        self.kv_len = int(details["mask"]["shape"][-1]) if "mask" in details else None
        if self.kv_len is None:
            raise LitertError(f"{path} was converted without mask_as_input", "reconvert with the default settings")
        # State that is not keys and values (a convolution's last inputs) would take in the
        # padding of a prefill chunk: such a model is prefilled only in chunks that fit exactly.
        self.exact_prefill = any(not re.match(r"kv_cache_[kv]_", k) for k in self.kv_names)
        self.reset()

    def reset(self) -> None:
        self.kv = {k: np.zeros(s, dtype=np.float32) for k, s in self.kv_shapes.items()}
        self.position = 0

    def _mask(self, rows: int, start: int) -> np.ndarray:
        """Causal mask over the whole cache for queries at positions start .. start+rows-1."""
        slots = np.arange(self.kv_len)[None, :]
        query = (start + np.arange(rows))[:, None]
        return np.where(slots <= query, 0.0, -np.inf).astype(np.float32)[None, None]

    def _token_inputs(self, signature: str, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """`tokens`, or the embeddings the bundle's embedder models make of them."""
        names = self._inputs.get(signature)
        if names is None:
            names = self._inputs[signature] = set(self.interpreter.get_signature_runner(signature).get_input_details())
        if "tokens" in names:
            return {"tokens": tokens}
        inputs = {}
        for name in (n for n in names if n.endswith("embeddings")):
            kind = name.removesuffix("embeddings")  # "" or "per_layer_"
            phase, _, length = signature.partition("_")  # "decode" or "prefill_64"
            wanted = f"{phase}_{kind}embedder" + (f"_{length}" if length else "")
            embedder = next((e for e in self.embedders if wanted in e.get_signature_list()), None)
            if embedder is None:
                raise LitertError(f"the bundle has no {wanted} model for its {name} input", "reconvert the model")
            inputs[name] = embedder.get_signature_runner(wanted)(token_ids=tokens)["embeddings"]
        return inputs

    def prefill(self, ids: list[int]) -> None:
        """Write `ids` into the cache at the current position (no logits, as the runtime does)."""
        while ids:
            if self.exact_prefill:
                exact = [n for n in self.prefill_lengths if n <= len(ids)]
                if not exact:  # shorter than any chunk: one token at a time, as decode does
                    for token in ids:
                        self.step(token)
                    return
                size = exact[-1]
            else:
                fitting = [n for n in self.prefill_lengths if n >= len(ids)]
                size = fitting[0] if fitting else self.prefill_lengths[-1]
            chunk, ids = ids[:size], ids[size:]
            if self.position + size > self.kv_len:
                raise LitertError("the prompt does not fit the bundle's KV cache", "use a shorter prompt")
            tokens = np.zeros((1, size), dtype=np.int32)
            tokens[0, : len(chunk)] = chunk
            runner = self.interpreter.get_signature_runner(f"prefill_{size}")
            out = runner(
                **self._token_inputs(f"prefill_{size}", tokens),
                input_pos=np.arange(self.position, self.position + size, dtype=np.int32),
                mask=self._mask(size, self.position),
                **self.kv,
            )
            self._take_kv(out)
            # Padding wrote past the chunk; those slots are masked until decode overwrites them.
            self.position += len(chunk)

    def step(self, token: int) -> np.ndarray:
        """Feed one token at the current position; return the next-token logits."""
        if self.position >= self.kv_len:
            raise LitertError("the KV cache is full", "generate fewer tokens")
        out = self.decode(
            **self._token_inputs("decode", np.array([[token]], dtype=np.int32)),
            input_pos=np.array([self.position], dtype=np.int32),
            mask=self._mask(1, self.position),
            **self.kv,
        )
        self._take_kv(out)
        self.position += 1
        return np.asarray(out["logits"], dtype=np.float32).reshape(-1)

    def _take_kv(self, out: dict[str, Any]) -> None:
        for k in self.kv_names:
            self.kv[k] = out[k]

    def next_token_logits(self, ids: list[int]) -> np.ndarray:
        """Teacher-forced logits after each of `ids[1:]`... i.e. row i predicts ids[i+1].

        The first token is decoded too, so row 0 is the prediction after ids[0].
        """
        self.reset()
        return np.stack([self.step(t) for t in ids])

    def greedy(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of `prompt`: prefill all but the last token, then decode."""
        self.reset()
        self.prefill(prompt[:-1])
        token = prompt[-1]
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.step(token)))
            out.append(token)
        return out
