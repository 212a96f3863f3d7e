"""Qwen3.5 through litert (linear attention as plain operations, the states mended) against
`litert-torch export_hf` run directly (its fused `gated_delta_update` op), same run.

A Qwen3.5-shaped checkpoint made locally (random bf16 weights, the tiny model's tokenizer
and so its small vocabulary: the runtime must be able to write every id the random model
picks): Qwen3.5's rhythm of three gated delta-net layers to one full-attention layer, at a
0.6B-class width (`--layers`, default 24). For each path: wall time and process-tree peak
RSS (as bench.py measures them), bundle bytes, and `litert-lm benchmark` prefill and decode
tokens/s — what exactness costs at run time.

    nox -s bench -- qwen3_5                  # 24 layers
    nox -s bench -- qwen3_5 --layers 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench import ROOT, measure, runtime_speed, staged_with_tokenizer

TINY = ROOT / "plugins" / "litert_qwen3_5" / "src" / "litert_qwen3_5" / "tiny" / "Qwen3_5-tiny"
SETTINGS = {"prefill": 128, "kv": 1024, "quantize": "dynamic_int8", "exporter_recipe": "dynamic_wi8_afp32"}
WIDTHS = dict(
    hidden_size=1024, intermediate_size=3584, num_attention_heads=8, num_key_value_heads=2, head_dim=256,
    linear_num_key_heads=16, linear_num_value_heads=16, linear_key_head_dim=128, linear_value_head_dim=128,
    linear_conv_kernel_dim=4, max_position_embeddings=32768, tie_word_embeddings=True,
)  # fmt: skip


def make_checkpoint(layers: int, dest: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (dest / "config.json").is_file():
        return dest
    tmp = staged_with_tokenizer(TINY, dest)
    cfg = json.loads((TINY / "config.json").read_text())
    cfg.update(WIDTHS, num_hidden_layers=layers)
    cfg["layer_types"] = ["full_attention" if i % 4 == 3 else "linear_attention" for i in range(layers)]
    cfg.pop("architectures", None)
    config = AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(tmp, safe_serialization=True)
    del model
    tmp.rename(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = make_checkpoint(args.layers, work / f"qwen3_5-{args.layers}l")
    parameters = sum(p.stat().st_size for p in ckpt.glob("*.safetensors")) // 2
    bin_dir = Path(sys.executable).parent
    home = {"LITERT_HOME": str(work / "home")}
    prefill, kv = str(SETTINGS["prefill"]), str(SETTINGS["kv"])
    rows = {}
    bundle = work / "qwen3_5-litert.litertlm"
    rows["litert"] = measure(
        [str(bin_dir / "litert"), "convert", str(ckpt), "--prefill-lengths", prefill, "--kv-cache-max-len", kv,
         "--quantize", SETTINGS["quantize"], "--no-verify", "--force", "-o", str(bundle)], home)  # fmt: skip
    rows["litert"]["bundle"] = str(bundle)
    outdir = work / "qwen3_5-export_hf"
    shutil.rmtree(outdir, ignore_errors=True)
    recipe = SETTINGS["exporter_recipe"]
    rows["export_hf"] = measure(
        [str(bin_dir / "litert-torch"), "export_hf", f"--model={ckpt}", f"--output_dir={outdir}",
         f"--prefill_lengths={prefill}", f"--cache_length={kv}", f"--quantization_recipe={recipe}"], home)  # fmt: skip
    produced = sorted(outdir.rglob("*.litertlm")) if outdir.exists() else []
    rows["export_hf"]["bundle"] = str(produced[0]) if produced else None
    for row in rows.values():
        row.pop("stderr", None)
        made = Path(row["bundle"]) if row["bundle"] else None
        row["bundle_bytes"] = made.stat().st_size if made and made.is_file() else None
        row.update(runtime_speed(made) if made and made.is_file() else {})
    result = {"layers": args.layers, "parameters": parameters, "settings": SETTINGS, "rows": rows}
    (out / f"qwen3_5-{args.layers}l.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
