"""The transformers-native path, measured: litert (gemma4 plugin) against `litert-torch
export_hf` run directly, on an E2B-shaped Gemma 4 made locally (random weights).

The checkpoint has Gemma 4 E2B's widths — hidden 1536, MLP 6144, 8 query heads and one KV
head of 256 (512 on full-attention layers), per-layer embeddings of 256 for each of 262,144
ids, KV shared by the last layers, soft-capping — with fewer layers (`--layers`, default 5):
the full 35 layers are about 5 billion parameters with the per-layer table, more than
this 24 GB machine can trace in float32 on either path (see docs/performance.md). Both paths
get the same settings and the same recipe; wall time and the process tree's peak RSS are
measured as bench.py measures them, and litert's pre-flight estimate is recorded beside.
Paths: `litert` (`--no-verify`, like export_hf), `verified` (the default command a user runs,
verification included), `export_hf`.

    nox -s bench -- native                 # 5 layers
    nox -s bench -- native --layers 10
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from bench import ROOT, measure, staged_with_tokenizer

TINY_GEMMA4 = ROOT / "plugins" / "litert_gemma4" / "src" / "litert_gemma4" / "tiny" / "Gemma4-tiny"
SETTINGS = {"prefill": 128, "kv": 1024}
E2B_TEXT = dict(
    hidden_size=1536, intermediate_size=6144, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
    vocab_size=262144, vocab_size_per_layer_input=262144, hidden_size_per_layer_input=256, sliding_window=512,
    final_logit_softcapping=30.0, max_position_embeddings=131072,
)  # fmt: skip


def make_checkpoint(layers: int, dest: Path) -> Path:
    """An E2B-shaped Gemma4ForConditionalGeneration with `layers` layers (sliding and full
    attention, the last two sharing KV), random bf16 weights, the tiny model's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    if (dest / "config.json").is_file():
        return dest
    tmp = staged_with_tokenizer(TINY_GEMMA4, dest)
    cfg = json.loads((TINY_GEMMA4 / "config.json").read_text())
    text = cfg["text_config"]
    text.update(E2B_TEXT, num_hidden_layers=layers, num_kv_shared_layers=min(2, layers - 1))
    # E2B's rhythm is four sliding layers to one full; here the last layer and the third from
    # last are full, so both kinds produce KV before the two sharing layers use it.
    full = {layers - 3, layers - 1} | {i for i in range(layers) if i % 5 == 4}
    text["layer_types"] = ["full_attention" if i in full else "sliding_attention" for i in range(layers)]
    text["per_layer_config"] = {f"{i:02d}": {"head_dim": 512} for i in sorted(full)}
    config = AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(tmp, safe_serialization=True)
    del model
    tmp.rename(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--paths", default="litert,verified,export_hf")
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = make_checkpoint(args.layers, work / f"gemma4-e2b-{args.layers}l")
    weights_bytes = sum(p.stat().st_size for p in ckpt.glob("*.safetensors"))  # bf16: 2 bytes a parameter
    bin_dir = Path(sys.executable).parent
    home = {"LITERT_HOME": str(work / "home")}
    rows = {}
    prefill, kv = str(SETTINGS["prefill"]), str(SETTINGS["kv"])
    for path in args.paths.split(","):
        if path == "export_hf":
            outdir = work / "gemma4-export_hf"
            shutil.rmtree(outdir, ignore_errors=True)
            cmd = [str(bin_dir / "litert-torch"), "export_hf", f"--model={ckpt}", f"--output_dir={outdir}",
                   f"--prefill_lengths={prefill}", f"--cache_length={kv}", "--quantization_recipe=dynamic_wi8_afp32",
                   "--externalize_embedder=True"]  # fmt: skip
            rows[path] = measure(cmd, home)
            produced = sorted(outdir.rglob("*.litertlm")) if outdir.exists() else []
            rows[path]["bundle_bytes"] = produced[0].stat().st_size if produced else None
            continue
        # `litert`: --no-verify, as export_hf; `verified`: the default command, as a user runs it
        bundle = work / f"gemma4-{path}.litertlm"
        checks = [] if path == "verified" else ["--no-verify"]
        cmd = [str(bin_dir / "litert"), "convert", str(ckpt), "--prefill-lengths", prefill, "--kv-cache-max-len", kv,
               *checks, "--force", "-o", str(bundle)]  # fmt: skip
        rows[path] = measure(cmd, home)
        estimate = re.search(r"memory ~([\d.]+) GB", rows[path]["stderr"])
        rows[path]["estimate_gb"] = float(estimate.group(1)) if estimate else None
        rows[path]["bundle_bytes"] = bundle.stat().st_size if bundle.is_file() else None
    for r in rows.values():
        r.pop("stderr", None)
    result = {"layers": args.layers, "parameters": weights_bytes // 2, "settings": SETTINGS, "rows": rows}
    (out / f"native-gemma4-{args.layers}l-{args.paths.replace(',', '-')}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
