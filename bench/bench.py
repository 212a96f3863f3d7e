"""Conversion benchmark: full-size checkpoints (real configs, random weights), made locally.

For each model it converts through `litert convert` (the lightweight export path) and, in
the same run, the baselines: the classic generative-API flow (LITERT_CLASSIC_EXPORT=1:
upstream's convert_to_tflite levers) and `litert-torch export_hf` with its defaults. It
records wall time, peak RSS of the converting process tree, bundle bytes, prefill and
decode tokens/s from `litert-lm benchmark`, the effective decode bandwidth against the
machine's measured memory bandwidth, and the CLI start-up time. Results go to a JSON file
and a markdown table with ratios against the baselines.

    nox -s bench -- --models qwen3-0.6b --out bench/results
    nox -s bench -- --models qwen3-0.6b --paths litert,int4,classic   # int4 (dynamic_int4_block32) beside int8
    nox -s bench -- --models qwen3-0.6b --paths litert,loaded          # what streamed weights buy
    nox -s bench -- --models qwen3-8b --paths litert --no-runtime      # conversion only
    nox -s bench -- --models qwen3-0.6b --paths litert,verified --no-runtime   # what verification costs
    nox -s bench -- --models qwen3-8b --paths litert,filled --no-runtime      # what quantizing from the checkpoint buys

Paths: `litert` (the default conversion, --no-verify), `verified` (the default command as a
user runs it, verification included), `int4` (litert with dynamic_int4_block32),
`loaded` (litert with LITERT_STREAM_WEIGHTS=0: the model's weights loaded whole, as before
streaming), `filled` (litert with LITERT_QUANTIZE_FROM_CHECKPOINT=0: the float model filled
with the weights, then quantized, as before 2026-12-03), `classic` and `export_hf` (the
baselines).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY_QWEN3 = ROOT / "plugins" / "litert_qwen3" / "src" / "litert_qwen3" / "tiny" / "Qwen3-tiny"
TINY_GEMMA3 = ROOT / "plugins" / "litert_gemma3" / "src" / "litert_gemma3" / "tiny" / "Gemma3-tiny"

# Real configurations (config.json of the published checkpoints), weights random.
CONFIGS = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
    "qwen3-14b": dict(hidden_size=5120, intermediate_size=17408, num_hidden_layers=40, num_attention_heads=40,
                      num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
    # google/gemma-3-1b-it, in the Hub's config vintage (rope_theta, rope_local_base_freq,
    # sliding_window_pattern at the top level).
    "gemma3-1b": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                      num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256, sliding_window=512,
                      sliding_window_pattern=6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                      max_position_embeddings=32768, vocab_size=262144, tie_word_embeddings=True),
}  # fmt: skip
REFERENCE = ("--prefill-lengths", "8,64,128,256,512,1024", "--kv-cache-max-len", "1280", "--quantize", "dynamic_int8")


def staged_with_tokenizer(tiny: Path, dest: Path) -> Path:
    """A fresh `dest.partial` holding the tiny model's files but its weights and config: a
    full-size checkpoint is written there and renamed to `dest` once complete."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in tiny.iterdir():
        if f.suffix != ".safetensors" and f.name != "config.json":
            shutil.copy(f, tmp / f.name)
    return tmp


def make_checkpoint(name: str, dest: Path) -> Path:
    """A full-size checkpoint with the real config, random bf16 weights and the tiny model's tokenizer."""
    import torch
    from safetensors.torch import save_file

    if (dest / "config.json").is_file():
        return dest
    gemma = name.startswith("gemma3")
    tiny = TINY_GEMMA3 if gemma else TINY_QWEN3
    tmp = staged_with_tokenizer(tiny, dest)
    if gemma:
        pieces = pad_sentencepiece(tmp / "tokenizer.model", CONFIGS[name]["vocab_size"])
        pad_tokenizer_json(tmp / "tokenizer.json", pieces, CONFIGS[name]["vocab_size"])
    cfg = json.loads((tiny / "config.json").read_text())
    cfg.pop("layer_types", None)  # the tiny model's; transformers derives it from num_hidden_layers
    if gemma:
        cfg.pop("rope_parameters", None)
        cfg.pop("_sliding_window_pattern", None)
        cfg.update(CONFIGS[name])
    else:
        cfg.update(CONFIGS[name], vocab_size=151936, max_position_embeddings=40960)
        cfg["max_window_layers"] = cfg["num_hidden_layers"]
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    h, inter, kv, hd, heads = (cfg[k] for k in ("hidden_size", "intermediate_size", "num_key_value_heads", "head_dim",
                                               "num_attention_heads"))  # fmt: skip
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

    # Gemma's norms scale by (1 + weight): zeros are its identity, ones Qwen's.
    norm_value = 0.0 if gemma else 1.0

    def norm(size: int) -> torch.Tensor:
        return torch.full((size,), norm_value, dtype=torch.bfloat16)

    norms = ["input_layernorm", "post_attention_layernorm"]
    if gemma:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    state = {"model.embed_tokens.weight": rand(cfg["vocab_size"], h), "model.norm.weight": norm(h)}
    if not cfg.get("tie_word_embeddings", True):
        state["lm_head.weight"] = rand(cfg["vocab_size"], h)
    shard, index, n = {}, {}, 1
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shard.update({
            p + "self_attn.q_proj.weight": rand(heads * hd, h), p + "self_attn.k_proj.weight": rand(kv * hd, h),
            p + "self_attn.v_proj.weight": rand(kv * hd, h), p + "self_attn.o_proj.weight": rand(h, heads * hd),
            p + "self_attn.q_norm.weight": norm(hd), p + "self_attn.k_norm.weight": norm(hd),
            p + "mlp.gate_proj.weight": rand(inter, h), p + "mlp.up_proj.weight": rand(inter, h),
            p + "mlp.down_proj.weight": rand(h, inter),
        })  # fmt: skip
        shard.update({p + f"{k}.weight": norm(h) for k in norms})
        if i % 8 == 7:
            fname = f"model-{n:05d}.safetensors"
            save_file(shard, str(tmp / fname), metadata={"format": "pt"})
            index.update(dict.fromkeys(shard, fname))
            shard, n = {}, n + 1
    shard.update(state)
    fname = f"model-{n:05d}.safetensors"
    save_file(shard, str(tmp / fname), metadata={"format": "pt"})
    index.update(dict.fromkeys(shard, fname))
    (tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    tmp.rename(dest)
    return dest


def pad_tokenizer_json(path: Path, start: int, size: int) -> None:
    """The same placeholder pieces in tokenizer.json's vocabulary, so that transformers
    decodes every id as the runtime does (without them it decodes the random model's
    placeholder ids as nothing, and verification compares an empty answer with the runtime's)."""
    if not path.is_file():
        return
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    used = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    vocab.update({f"<unused{i}>": i for i in range(start, size) if i not in used})
    path.write_text(json.dumps(data))


def pad_sentencepiece(path: Path, size: int) -> int:
    """Grow the tiny SentencePiece model to the real vocabulary size with placeholder pieces,
    so the runtime can detokenize every id a random full-size model generates; returns the
    first placeholder's id."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    start = len(model.pieces)
    for i in range(start, size):
        model.pieces.add(
            piece=f"<unused{i}>", score=-1000.0, type=sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
        )
    path.write_bytes(model.SerializeToString())
    return start


def _tree_rss_kb(root: int) -> tuple[int, int]:
    """The summed resident set of `root` and all its descendants, from /proc, and the part of
    it that is not file pages (mapped files — a checkpoint read through mmap — count in the
    resident set, but the kernel takes them back when memory is short)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                fields = f.read().split()
            page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
            rss[int(entry)] = (int(fields[1]) * page_kb, (int(fields[1]) - int(fields[2])) * page_kb)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, anon, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, (0, 0))[0]
        anon += rss.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total, anon


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall time and peak RSS of the command's process tree: the larger of GNU time's (the
    largest resident set of any one process) and the largest sum over the processes alive at
    once, sampled every 0.2 s (litert lowers on two processes at a time)."""
    import threading

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        peak_tree, peak_anon = [0], [0]
        disk_start = shutil.disk_usage(tempfile.gettempdir()).used
        peak_disk = [disk_start]

        def sample() -> None:
            while proc.poll() is None:
                total, anon = _tree_rss_kb(proc.pid)
                peak_tree[0], peak_anon[0] = max(peak_tree[0], total), max(peak_anon[0], anon)
                peak_disk[0] = max(peak_disk[0], shutil.disk_usage(tempfile.gettempdir()).used)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, stderr = proc.communicate()
        sampler.join()
        wall = time.monotonic() - t0
        peak_kb = int((rss.read().strip().splitlines() or ["0"])[-1] or 0)
    return {
        "ok": proc.returncode == 0,
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(max(peak_kb, peak_tree[0]) * 1024 / 1e9, 2),
        "peak_one_process_gb": round(peak_kb * 1024 / 1e9, 2),
        "peak_anon_gb": round(peak_anon[0] * 1024 / 1e9, 2),
        "peak_disk_gb": round((peak_disk[0] - disk_start) / 1e9, 2),
        "stderr_tail": stderr[-800:] if proc.returncode else "",
        "stderr": stderr,
    }


def runtime_speed(bundle: Path) -> dict:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("litert-lm")), "benchmark", str(bundle), "-p", "256", "-d", "128"],
        capture_output=True, text=True,
    )  # fmt: skip
    text = out.stdout + out.stderr
    prefill = re.search(r"Prefill speed:\s+([\d.]+)", text)
    decode = re.search(r"Decode speed:\s+([\d.]+)", text)
    return {
        "prefill_tok_s": float(prefill.group(1)) if prefill else None,
        "decode_tok_s": float(decode.group(1)) if decode else None,
    }


def memory_bandwidth_gb_s() -> float:
    """Single-thread read bandwidth: numpy's max over 2 GB of float32 (vectorised, so memory-bound;
    a float64 sum is add-bound at about half of this)."""
    import numpy as np

    a = np.ones(2 * 1024**3 // 4, dtype=np.float32)
    a.max()
    t0 = time.perf_counter()
    for _ in range(3):
        a.max()
    return round(3 * a.nbytes / (time.perf_counter() - t0) / 1e9, 1)


def startup() -> dict:
    exe = str(Path(sys.executable).with_name("litert"))
    out = {}
    for args in (["--help"], ["plugins", "list"]):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([exe, *args], capture_output=True)
            times.append(time.perf_counter() - t0)
        out[" ".join(args)] = round(statistics.median(times), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="qwen3-0.6b")
    ap.add_argument("--paths", default="litert,classic,export_hf")
    ap.add_argument("--work", default=str(ROOT / ".bench"))
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--table", metavar="BENCH_JSON", help="only print the markdown table of an earlier run")
    ap.add_argument("--no-runtime", action="store_true", help="skip litert-lm benchmark on the bundles")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())), end="")
        return 0
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    litert = str(Path(sys.executable).with_name("litert"))
    results: dict = {"bandwidth_gb_s": memory_bandwidth_gb_s(), "startup_s": startup(), "models": {}}
    for model in args.models.split(","):
        ckpt = make_checkpoint(model, work / model)
        rows = {}
        for path in args.paths.split(","):
            bundle = work / f"{model}-{path}.litertlm"
            bundle.unlink(missing_ok=True)
            home = {"LITERT_HOME": str(work / "home")}
            if path == "export_hf":
                outdir = work / f"{model}-export_hf"
                shutil.rmtree(outdir, ignore_errors=True)
                cmd = [str(Path(sys.executable).with_name("litert-torch")), "export_hf", f"--model={ckpt}",
                       f"--output_dir={outdir}"]  # fmt: skip
                row = measure(cmd, home)
                produced = sorted(outdir.rglob("*.litertlm")) if outdir.exists() else []
                if produced:
                    shutil.move(str(produced[0]), bundle)
            else:
                env = {**home, "LITERT_CLASSIC_EXPORT": "1" if path == "classic" else "0",
                       "LITERT_STREAM_WEIGHTS": "0" if path == "loaded" else "1",
                       "LITERT_QUANTIZE_FROM_CHECKPOINT": "0" if path == "filled" else "1"}  # fmt: skip
                settings = list(REFERENCE)
                if path == "int4":  # litert with the blockwise int4 recipe instead of int8
                    settings[settings.index("dynamic_int8")] = "dynamic_int4_block32"
                # `verified`: the command a user runs, verification included; the others --no-verify.
                checks = [] if path == "verified" else ["--no-verify"]
                row = measure([litert, "convert", str(ckpt), *settings, *checks, "--force", "-o", str(bundle)],
                              env)  # fmt: skip
            if bundle.is_file():
                row["bundle_bytes"] = bundle.stat().st_size
                if not args.no_runtime:
                    row.update(runtime_speed(bundle))
                if row.get("decode_tok_s"):
                    row["decode_gb_s"] = round(row["decode_tok_s"] * row["bundle_bytes"] / 1e9, 1)
            rows[path] = row
            print(model, path, row, flush=True)
            json.dump(results | {"models": {**results["models"], model: rows}}, open(out / "bench.json", "w"), indent=2)
        results["models"][model] = rows
    json.dump(results, open(out / "bench.json", "w"), indent=2)
    (out / "bench.md").write_text(table(results))
    print(table(results))
    return 0


def table(results: dict) -> str:
    """The markdown table: each row against the baselines measured for the same model in the same run."""
    bw = results["bandwidth_gb_s"]
    lines = [
        f"Memory read bandwidth (numpy max over 2 GB of float32, one thread): {bw} GB/s. "
        f"CLI start-up (median of 5): " + ", ".join(f"`litert {k}` {v} s" for k, v in results["startup_s"].items()),
        "",
        "| model | path | wall | × classic | × export_hf | peak RSS | × classic | × export_hf | bundle bytes "
        "| prefill tok/s | × classic | decode tok/s | × classic | decode GB/s (% of bandwidth) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in results["models"].items():
        for path, r in rows.items():
            if not r.get("bundle_bytes"):
                lines.append(f"| {model} | {path} | failed: {r.get('stderr_tail', '')[-120:]!r} |")
                continue

            def ratio(key: str, baseline: str, r: dict = r, rows: dict = rows) -> str:
                base = rows.get(baseline, {})
                return f"{r[key] / base[key]:.2f}" if r.get(key) and base.get(key) else "-"

            gbs = r.get("decode_gb_s")
            lines.append(
                f"| {model} | {path} | {r['wall_s']} s | {ratio('wall_s', 'classic')} | {ratio('wall_s', 'export_hf')} "
                f"| {r['peak_rss_gb']} GB | {ratio('peak_rss_gb', 'classic')} | {ratio('peak_rss_gb', 'export_hf')} "
                f"| {r['bundle_bytes']:,} | {r.get('prefill_tok_s', '-')} | {ratio('prefill_tok_s', 'classic')} "
                f"| {r.get('decode_tok_s', '-')} | {ratio('decode_tok_s', 'classic')} "
                f"| {gbs if gbs else '-'}{f' ({100 * gbs / bw:.0f}%)' if gbs and bw else ''} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
