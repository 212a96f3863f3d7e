"""`litert inspect`: what a .litertlm bundle carries, read from the file alone.

Works on any LiteRT-LM bundle (litert's or another tool's): sections and their sizes, the
model's signatures with their input shapes (read from the TFLite flatbuffer, without
loading the model), the prompt format, stop and start tokens, the sampler, the chat
template's first lines; for bundles made by litert also how they were made (provenance)
and their parity report.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

from litert.bundle import BundleInfo, read_bundle


def signatures(info: BundleInfo) -> dict[str, dict[str, list[int]]]:
    """signature name -> input name -> shape, for the bundle's TFLite model(s)."""
    from ai_edge_litert import schema_py_generated as schema

    out: dict[str, dict[str, list[int]]] = {}
    with open(info.path, "rb") as f:
        # Mapped, not read: a full-size model section is gigabytes. Not closed explicitly:
        # flatbuffers keeps views into it; it is unmapped when the last view goes.
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for section in info.sections:
            if section.data_type != "TFLiteModel":
                continue
            model = schema.Model.GetRootAs(memoryview(data)[section.begin : section.end], 0)
            for i in range(model.SignatureDefsLength()):
                sig = model.SignatureDefs(i)
                graph = model.Subgraphs(sig.SubgraphIndex())
                inputs = {}
                for j in range(sig.InputsLength()):
                    tensor = graph.Tensors(sig.Inputs(j).TensorIndex())
                    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
                    inputs[sig.Inputs(j).Name().decode()] = shape
                out[sig.SignatureKey().decode()] = inputs
    return out


def original_template(template: str) -> str:
    """The model's own template, without the preamble litert adds for the runtime's renderer."""
    from litert import templates

    prefix = templates.MARKER + templates._PREAMBLE
    return template[len(prefix) :] if template.startswith(prefix) else template


def describe(path: Path) -> dict[str, Any]:
    """Everything `litert inspect --json` prints."""
    info = read_bundle(path)
    llm = info.llm
    templates = llm.prompt_templates

    def turn(name: str) -> dict[str, str] | None:
        if not templates.HasField(name):
            return None
        t = getattr(templates, name)
        return {"prefix": t.prefix, "suffix": t.suffix}

    summary = info.summary
    jinja = original_template(llm.jinja_prompt_template)
    return {
        "path": str(info.path),
        "size": info.size,
        "version": info.version,
        "sections": [{"type": s.data_type, "bytes": s.end - s.begin} for s in info.sections],
        "signatures": signatures(info),
        "max_num_tokens": int(llm.max_num_tokens),
        "model_type": llm.llm_model_type.WhichOneof("model_type") if llm.HasField("llm_model_type") else None,
        "prompt": {name: turn(name) for name in ("user", "model", "system")},
        "stop_token_ids": info.stop_token_ids,
        "start_token_ids": info.start_token_ids,
        "supports_thinking": bool(llm.supports_thinking),
        "sampler": {
            "temperature": round(float(llm.sampler_params.temperature), 6),
            "top_p": round(float(llm.sampler_params.p), 6),
            "top_k": int(llm.sampler_params.k),
        },
        "chat_template": jinja.splitlines()[:8] if jinja else None,
        "system_metadata": {k: v for k, v in info.system.items() if k != "litert"},
        "made_by_litert": bool(summary),
        "conversion": {k: v for k, v in summary.items() if k not in ("provenance", "parity")} or None,
        "provenance": summary.get("provenance"),
        "parity": summary.get("parity"),
    }


def render(d: dict[str, Any]) -> str:
    """The human-readable form of `describe`."""
    from litert.console import human_size

    lines = [f"{d['path']}  ({human_size(d['size'])}, {d['size']:,} bytes, LiteRT-LM format {d['version']})"]
    lines.append("sections:")
    lines += [f"  {s['type']:<22} {human_size(s['bytes']):>10}  ({s['bytes']:,} bytes)" for s in d["sections"]]
    lines.append("signatures:")
    for name, inputs in d["signatures"].items():
        shown = ", ".join(f"{k} {v}" for k, v in inputs.items() if not k.startswith("kv_cache_"))
        kv = [k for k in inputs if k.startswith("kv_cache_")]
        lines.append(f"  {name}: {shown}" + (f", {len(kv)} KV cache tensors" if kv else ""))
    lines.append(f"context:        {d['max_num_tokens']} tokens · model type {d['model_type']}")
    for name, turn in d["prompt"].items():
        if turn:
            lines.append(f"{name + ' turn:':<16}{turn['prefix']!r} … {turn['suffix']!r}")
    lines.append(f"stop tokens:    {d['stop_token_ids']}   start token: {d['start_token_ids'] or '-'}")
    s = d["sampler"]
    lines.append(f"sampler:        temperature {s['temperature']} · top-p {s['top_p']} · top-k {s['top_k']}")
    if d["chat_template"]:
        lines.append("chat template:  " + "\n                ".join(line[:100] for line in d["chat_template"][:3]))
    else:
        lines.append("chat template:  none (a base model: `litert run` sends raw text)")
    conv = d["conversion"]
    if conv:
        plugin = conv.get("plugin") or {}
        st = conv.get("settings") or {}
        lines.append(
            f"made by:        litert {conv.get('litert_version')} · {conv.get('family')} via "
            f"{plugin.get('distribution')} {plugin.get('version')} · {st.get('quantize')} · "
            f"prefill {','.join(map(str, st.get('prefill_lengths', [])))} · KV cache {st.get('kv_cache_max_len')}"
        )
        lines.append(
            f"source:         {conv.get('source')}" + (f" @ {conv['revision']}" if conv.get("revision") else "")
        )
    else:
        lines.append(
            "made by:        not litert (no conversion summary): "
            + ", ".join(f"{k}={v}" for k, v in d["system_metadata"].items())
        )
    prov = d["provenance"]
    if prov:
        lines.append(
            "inputs:         "
            + "\n                ".join(f"{name}  sha256:{digest[:16]}…" for name, digest in prov["inputs"].items())
        )
        lines.append("versions:       " + " · ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    parity = d["parity"]
    if parity:
        t = parity.get("thresholds") or {}
        lines.append(
            f"parity:         top-1 {parity['top1'] * 100:.1f}%, KL {parity['kl']:.4f}, max |Δlogit| "
            f"{parity['max_abs_logit_diff']:.3f} — {'pass' if parity['passed'] else 'FAIL'} "
            f"(thresholds: top-1 ≥ {_percent(t.get('top1'))}, KL ≤ {t.get('kl')}, greedy ≥ {t.get('greedy')} tokens)"
        )
    return "\n".join(lines)


def _percent(value: object) -> str:
    """A share as everything else prints it (top-1 99.4%), not as a fraction."""
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) else "?"
