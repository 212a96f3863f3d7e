"""Running the .tflite inside a bundle token by token, as the LiteRT-LM runtime does.

The runtime only exposes text; to measure a bundle against the transformers reference
token by token we drive the model's own signatures through LiteRT's compiled-model API
(ai-edge-litert): a prefill signature for the prompt, then the decode signature one token
at a time, with the KV cache carried between calls and the attention mask built the way
the runtime builds it (causal over the cache; sliding windows are applied inside the
model from `input_pos`).

Why the compiled-model API and not the classic interpreter: both run XNNPACK, with the
same numerics (the same logits to the last bit on Qwen3-0.6B at dynamic_int8), but the
interpreter's XNNPACK packs the weights again for every signature it runs, in memory, and
keeps them: on Qwen3-0.6B at dynamic_int8 (0.6 GB of weights) 5.0 GB and 22 s for the
first five decode steps, 5.7 GB once a prefill signature ran too. The compiled model packs
them once for all signatures into a weight cache file (as the LiteRT-LM runtime does; the
same 0.6 GB): ready in 5 s, 2.2 GB after a prefill and eleven decode steps, 0.16 GB once
closed (docs/performance.md).

Bundles made by the transformers-native exporter are run the same way: their other state
(LFM2's convolution states, Qwen3.5's convolution and recurrent ones) rides under the same
`kv_cache_` names, and when the token
embedders are models of their own (Gemma 4), each `...embeddings` input of a signature
is computed by the matching embedder signature (`decode_embedder`,
`prefill_per_layer_embedder_64`, ...).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from litert.bundle import BundleInfo, read_bundle
from litert.errors import LitertError


class _Model:
    """One .tflite of the bundle as a LiteRT compiled model, its packed weights in a file."""

    def __init__(self, source: bytes | Path, weight_cache: Path, num_threads: int) -> None:
        """`source`: the .tflite's bytes, or a file holding them (mapped by LiteRT, not read)."""
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.options import CpuOptions, Options

        # XNNPACK aborts the process when the cache file's disk fills under it: without room
        # for the packed copy (about the model's size), the weights are packed in memory.
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        room = shutil.disk_usage(weight_cache.parent).free >= size * 1.1 + (1 << 20)
        cache = str(weight_cache) if room else ""
        options = Options(cpu_options=CpuOptions(num_threads=num_threads, xnnpack_weight_cache_path=cache))
        if isinstance(source, Path):
            self.compiled = CompiledModel.from_file(str(source), options=options)
        else:
            self.compiled = CompiledModel.from_buffer(source, options=options)
        self.signatures = self.compiled.get_signature_list()

    def inputs(self, signature: str) -> dict[str, Any]:
        return self.compiled.get_input_tensor_details(signature)

    def buffer(self, signature: str, name: str) -> Any:
        """A new buffer shaped for input `name` of `signature`."""
        return self.compiled.create_input_buffer_by_name(signature, name)

    def run(
        self, signature: str, inputs: dict[str, np.ndarray], state: dict[str, Any] | None = None,
        state_out: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Run `signature` on `inputs` (arrays) and `state` (buffers, written into `state_out`);
        return its other outputs as arrays."""
        compiled = self.compiled
        given = {}
        for name, value in inputs.items():
            buf = compiled.create_input_buffer_by_name(signature, name)
            buf.write(np.ascontiguousarray(value))
            given[name] = buf
        outputs = compiled.get_output_tensor_details(signature)
        taken = {n: compiled.create_output_buffer_by_name(signature, n) for n in outputs if n not in (state_out or {})}
        compiled.run_by_name(signature, {**given, **(state or {})}, {**taken, **(state_out or {})})
        return {
            n: buf.read(int(np.prod(outputs[n]["shape"])), np.dtype(outputs[n]["dtype"])).reshape(outputs[n]["shape"])
            for n, buf in taken.items()
        }


IN_MEMORY_BYTES = 1 << 30
"""A bundle's model up to this size is read into memory; a larger one is copied out of the
bundle into a file that LiteRT maps (its bytes would otherwise be held whole beside the
packed weights: 15 GB for Qwen3-14B at dynamic_int8)."""


def _section_source(info: BundleInfo, section: Any, directory: Path) -> bytes | Path:
    """The section's bytes, or for a large one a file in `directory` holding them (where there
    is room for it and the packed weights beside it)."""
    size = section.end - section.begin
    if size <= IN_MEMORY_BYTES or shutil.disk_usage(directory).free < 2.2 * size:
        return info.read(section)
    out = directory / "model.tflite"
    with open(info.path, "rb") as src, open(out, "wb") as dst:
        src.seek(section.begin)
        while size:
            chunk = src.read(min(size, 64 << 20))
            dst.write(chunk)
            size -= len(chunk)
    return out


class BundleModel:
    """The prefill and decode signatures of a bundle's model, with an explicit KV cache.

    Use it in a `with` block: leaving it frees the compiled models and removes their weight
    cache files (in `workdir`, or a temporary directory of its own in TMPDIR: about the
    size of the bundle's weights)."""

    def __init__(
        self, path: Path, num_threads: int = 2, workdir: Path | None = None, tflite: Path | None = None
    ) -> None:
        """`tflite`: the bundle's prefill/decode model as a file of its own (the conversion's),
        mapped instead of read from the bundle."""
        info = read_bundle(path)
        models = info.models()
        if "tf_lite_prefill_decode" not in models:
            raise LitertError(f"{path} has no prefill/decode model", "reconvert the model")
        self._dir = Path(tempfile.mkdtemp(prefix="litert-weights-", dir=workdir))
        # removed when closed, or when the object goes without being closed
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self._dir, True)
        try:
            main = models.pop("tf_lite_prefill_decode")
            same = tflite is not None and tflite.stat().st_size == main.end - main.begin
            source = tflite if same else _section_source(info, main, self._dir)
            self.model = _Model(source, self._dir / "model.xnnpack_cache", num_threads)
            self.embedders = [
                _Model(info.read(sec), self._dir / f"embedder-{i}.xnnpack_cache", num_threads)
                for i, sec in enumerate(models.values())
            ]
        except BaseException:
            self.close()
            raise
        self._inputs: dict[str, set[str]] = {}
        signatures = self.model.signatures
        self.prefill_lengths = sorted(
            int(m.group(1)) for name in signatures if (m := re.fullmatch(r"prefill_(\d+)", name))
        )
        if "decode" not in signatures or not self.prefill_lengths:
            self.close()
            raise LitertError(f"{path} has no prefill/decode signatures", "reconvert the model")
        details = self.model.inputs("decode")
        self.kv_names = sorted(k for k in details if k.startswith("kv_cache_"))
        self.kv_shapes = {k: tuple(details[k]["shape"]) for k in self.kv_names}
        self.kv_len = int(details["mask"]["shape"][-1]) if "mask" in details else None
        if self.kv_len is None:
            self.close()
            raise LitertError(f"{path} was converted without mask_as_input", "reconvert with the default settings")
        # State that is not keys and values (a convolution's last inputs) would take in the
        # padding of a prefill chunk: such a model is prefilled only in chunks that fit exactly.
        self.exact_prefill = any(not re.match(r"kv_cache_[kv]_", k) for k in self.kv_names)
        # Two sets of state buffers: a signature reads one and writes the other, then they
        # swap (the cache is never copied through Python: 293 MB a step for Qwen3-0.6B).
        self.kv = {k: self.model.buffer("decode", k) for k in self.kv_names}
        self._kv_next = {k: self.model.buffer("decode", k) for k in self.kv_names}
        self.reset()

    def __enter__(self) -> BundleModel:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the compiled models and remove their weight caches."""
        import gc

        self.kv = self._kv_next = {}
        self.model = self.embedders = None  # type: ignore[assignment]
        gc.collect()
        self._remove_dir()

    def reset(self) -> None:
        for name, buf in self.kv.items():
            buf.write(np.zeros(self.kv_shapes[name], dtype=np.float32))
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
            names = self._inputs[signature] = set(self.model.inputs(signature))
        if "tokens" in names:
            return {"tokens": tokens}
        inputs = {}
        for name in (n for n in names if n.endswith("embeddings")):
            kind = name.removesuffix("embeddings")  # "" or "per_layer_"
            phase, _, length = signature.partition("_")  # "decode" or "prefill_64"
            wanted = f"{phase}_{kind}embedder" + (f"_{length}" if length else "")
            embedder = next((e for e in self.embedders if wanted in e.signatures), None)
            if embedder is None:
                raise LitertError(f"the bundle has no {wanted} model for its {name} input", "reconvert the model")
            inputs[name] = embedder.run(wanted, {"token_ids": tokens})["embeddings"]
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
            self._run(
                f"prefill_{size}",
                **self._token_inputs(f"prefill_{size}", tokens),
                input_pos=np.arange(self.position, self.position + size, dtype=np.int32),
                mask=self._mask(size, self.position),
            )
            # Padding wrote past the chunk; those slots are masked until decode overwrites them.
            self.position += len(chunk)

    def step(self, token: int) -> np.ndarray:
        """Feed one token at the current position; return the next-token logits."""
        if self.position >= self.kv_len:
            raise LitertError("the KV cache is full", "generate fewer tokens")
        out = self._run(
            "decode",
            **self._token_inputs("decode", np.array([[token]], dtype=np.int32)),
            input_pos=np.array([self.position], dtype=np.int32),
            mask=self._mask(1, self.position),
        )
        self.position += 1
        return np.asarray(out["logits"], dtype=np.float32).reshape(-1)

    def _run(self, signature: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run `signature` on the current state, which it replaces."""
        out = self.model.run(signature, inputs, self.kv, self._kv_next)
        self.kv, self._kv_next = self._kv_next, self.kv
        return out

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
