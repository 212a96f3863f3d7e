"""`litert verify` and the parity check of `litert convert`: real bundles pass, and
deliberately broken bundles (wrong RoPE base, swapped tokenizer, wrong prompt format)
are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FAST, SMALLEST, run_cli


def _verify_json(checkpoint: Path, bundle: Path, home: Path, **env: str) -> tuple[int, dict]:
    result = run_cli("verify", checkpoint, bundle, "--json", home=home, env=env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_convert_prints_parity_line_and_stores_it(qwen3_bundle: Path, session_home: Path) -> None:
    # The session fixture's `litert convert` verified the bundle (default) and stored the summary.
    entry = json.loads((session_home / "models.json").read_text())["models"]["Qwen3-tiny"]
    assert entry["parity"]["passed"] is True
    assert entry["parity"]["summary"].startswith("parity: top-1 ")
    assert entry["parity"]["summary"].endswith("(dynamic_int8) — pass")


def test_fp32_qwen3_bundle_passes_with_identical_greedy_tokens(tmp_path: Path, tiny_qwen3: Path) -> None:
    out = tmp_path / "q.litertlm"
    result = run_cli("convert", tiny_qwen3, *FAST, "--quantize", "none", "-o", out, home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "[6/7] Verifying against transformers ... done" in result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("parity: top-1 100.0%, KL 0.0000") and line.endswith("(none) — pass"), line
    code, report = _verify_json(tiny_qwen3, out, tmp_path / "home")
    assert code == 0 and report["passed"] is True
    assert report["top1"] == 1.0
    names = [p["name"] for p in report["prompts"]]
    assert names == ["single", "system", "turns", "open", "long"]
    long = report["prompts"][-1]
    assert long["prompt_tokens"] > 64  # longer than the largest prefill length
    for p in report["prompts"]:
        assert p["greedy_complete"], p
        assert p["greedy_identical"] == p["greedy_reference"] > 0


def test_fp32_gemma3_bundle_passes(gemma3_bundle: Path, session_home: Path) -> None:
    import litert_gemma3

    tiny = litert_gemma3.TINY_CHECKPOINT
    code, report = _verify_json(tiny, gemma3_bundle, session_home)
    assert code == 0 and report["passed"], report["failures"]
    assert report["top1"] == 1.0 and report["max_abs_logit_diff"] < 1e-3
    window = json.loads((tiny / "config.json").read_text())["sliding_window"]
    assert max(p["prompt_tokens"] for p in report["prompts"]) > window
    assert all(p["greedy_complete"] for p in report["prompts"])


def test_dynamic_int8_gemma3_bundle_passes_its_thresholds(tmp_path: Path) -> None:
    import litert_gemma3

    out = tmp_path / "g8.litertlm"
    result = run_cli("convert", litert_gemma3.TINY_CHECKPOINT, *SMALLEST, "-o", out, home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("(dynamic_int8) — pass")
    code, report = _verify_json(litert_gemma3.TINY_CHECKPOINT, out, tmp_path / "home")
    assert code == 0 and report["passed"], report["failures"]
    assert report["thresholds"]["top1"] < 1.0  # quantized: the recipe's own thresholds apply


def _default_initialized_gemma3(dest: Path) -> Path:
    """The tiny Gemma3 with transformers' default initialisation (seed 0), its vocabulary the
    size of its tokenizer.model: a model that answers in single bytes, runs of which are not
    valid UTF-8 (<0x3E> … <0xE1>), which transformers' decoder prints as U+FFFD each and
    SentencePiece — the runtime's tokenizer — as the valid ones."""
    import sentencepiece
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    import litert_gemma3

    tiny = litert_gemma3.TINY_CHECKPOINT
    shutil.copytree(tiny, dest, ignore=shutil.ignore_patterns("*.safetensors"))
    config = AutoConfig.from_pretrained(tiny)
    config.vocab_size = sentencepiece.SentencePieceProcessor(model_file=str(tiny / "tokenizer.model")).get_piece_size()
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(torch.bfloat16).save_pretrained(dest)
    return dest


def test_answers_in_bytes_are_compared_as_the_runtime_writes_them(tmp_path: Path) -> None:
    # Compared after tokenizing the runtime's text again, these answers parted from
    # transformers' after 1-13 tokens on 3 prompts and `none` failed, though the runtime chose
    # the reference's every token: a bundle blamed for a round trip through its tokenizer.
    ckpt = _default_initialized_gemma3(tmp_path / "g3-init")
    out, home = tmp_path / "g3-init.litertlm", tmp_path / "home"
    result = run_cli("convert", ckpt, *SMALLEST, "--quantize", "none", "--no-verify", "-o", out, home=home)
    assert result.returncode == 0, result.stderr
    code, report = _verify_json(ckpt, out, home)
    assert code == 0 and report["passed"], report["failures"]
    assert report["greedy_whole"] == report["runtime_follows_whole"] == len(report["prompts"])


def test_a_reference_read_from_the_checkpoint_reports_what_the_loaded_one_reports(
    qwen3_bundle: Path, session_home: Path, tiny_qwen3: Path
) -> None:
    # The way a model whose float32 copy does not fit is verified (accelerate reading each
    # module's weights from the checkpoint as it runs): the same figures to the last bit.
    _, loaded = _verify_json(tiny_qwen3, qwen3_bundle, session_home, LITERT_REFERENCE="memory")
    _, offloaded = _verify_json(tiny_qwen3, qwen3_bundle, session_home, LITERT_REFERENCE="disk")
    assert loaded["passed"] and offloaded["passed"]
    for a, b in zip(loaded["prompts"], offloaded["prompts"], strict=True):
        assert [a[k] for k in ("top1", "kl_mean", "max_abs_logit_diff")] == [
            b[k] for k in ("top1", "kl_mean", "max_abs_logit_diff")
        ], a["name"]
        # its own answer taken up to its parting from the bundle's (here: none)
        assert b["greedy_identical"] == a["greedy_identical"], a["name"]


def test_dynamic_int8_qwen3_bundle_full_report(qwen3_bundle: Path, session_home: Path, tiny_qwen3: Path) -> None:
    result = run_cli("verify", tiny_qwen3, "Qwen3-tiny", home=session_home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["prompt", "tokens", "positions", "top-1"]
    assert any(line.startswith("thresholds (dynamic_int8)") for line in lines)
    assert lines[-1].endswith("(dynamic_int8) — pass")


# -- broken bundles ----------------------------------------------------------------------


def _copy(tiny: Path, dest: Path) -> Path:
    shutil.copytree(tiny, dest)
    return dest


def _break_rope(ckpt: Path) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config["rope_parameters"]["rope_theta"] = 10000.0  # the model was trained with 1e6
    (ckpt / "config.json").write_text(json.dumps(config))


def _swap_tokens(ckpt: Path) -> None:
    # Same strings, wrong ids: the runtime feeds the model tokens it never meant.
    data = json.loads((ckpt / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    a, b = "ĠFrance", "ĠGermany"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (ckpt / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))


def _wrong_prompt_format(ckpt: Path) -> None:
    config = json.loads((ckpt / "tokenizer_config.json").read_text())
    template = config["chat_template"]
    broken = template.replace(
        "'<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n'", "content + '\\n'"
    )
    assert broken != template
    config["chat_template"] = broken
    (ckpt / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3: Path) -> tuple[Path, Path]:
    """(home, bundle): the tiny Qwen3 with a swapped tokenizer, converted without verifying."""
    tmp = tmp_path_factory.mktemp("mismatched")
    broken = _copy(tiny_qwen3, tmp / "mismatched")
    _swap_tokens(broken)
    home, bundle = tmp / "home", tmp / "mismatched.litertlm"
    result = run_cli("convert", broken, *SMALLEST, "--quantize", "none", "--no-verify", "-o", bundle, home=home)
    assert result.returncode == 0, result.stderr
    assert "Verifying" not in result.stderr and "parity:" not in result.stdout
    return home, bundle


def _fails_with(tiny: Path, bundle: Path, home: Path, symptom: str) -> None:
    # Measured against the original model, the broken bundle fails, and says why.
    verify = run_cli("verify", tiny, bundle, "--tokens", "16", home=home)
    assert verify.returncode == 1
    assert "— FAIL" in verify.stdout
    failures = [line for line in verify.stdout.splitlines() if line.startswith("failed: ")]
    assert failures and any(symptom in f for f in failures), verify.stdout


@pytest.mark.parametrize(
    ("breaker", "symptom"),
    [(_break_rope, "top-1 agreement"), (_wrong_prompt_format, "(the prompt as raw text follows it)")],
    ids=["wrong-rope-base", "wrong-prompt-format"],
)
def test_broken_bundle_fails_the_check(breaker, symptom: str, tmp_path: Path, tiny_qwen3: Path) -> None:
    broken = _copy(tiny_qwen3, tmp_path / "broken")
    breaker(broken)
    bundle = tmp_path / "broken.litertlm"
    home = tmp_path / "home"
    result = run_cli("convert", broken, *SMALLEST, "--quantize", "none", "--no-verify", "-o", bundle, home=home)
    assert result.returncode == 0, result.stderr
    _fails_with(tiny_qwen3, bundle, home, symptom)


def test_swapped_tokenizer_fails_the_check(mismatched: tuple[Path, Path], tiny_qwen3: Path) -> None:
    home, bundle = mismatched
    _fails_with(tiny_qwen3, bundle, home, "greedy tokens identical")


def test_failed_bundle_is_kept_marked_failed_and_run_warns(mismatched: tuple[Path, Path], tiny_qwen3: Path) -> None:
    home, bundle = mismatched
    check = run_cli("verify", tiny_qwen3, "mismatched", "--tokens", "16", home=home)
    assert check.returncode == 1
    entry = json.loads((home / "models.json").read_text())["models"]["mismatched"]
    assert entry["parity"]["passed"] is False
    assert entry["parity"]["summary"].endswith("(none) — FAIL")
    assert bundle.is_file()
    run = run_cli("run", "mismatched", "-p", "Hi", "--max-tokens", "4", home=home)
    assert run.returncode == 0
    assert "warning: this bundle failed its parity check" in run.stderr


TINY_FAMILIES = ["qwen3", "gemma3", "llama", "phi3", "qwen2", "gemma4", "lfm2", "qwen3_5"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reference_loaded_as_stored_is_transformers_float32_model_to_the_bit(dtype: str, tmp_path: Path) -> None:
    """The reference is loaded in the checkpoint's 16-bit type and cast to float32 (a lower
    peak than transformers' own float32 load); it must be that same model: every parameter
    and buffer, and the logits, on each family's tiny checkpoint stored in `dtype`."""
    import importlib

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from litert.checkpoint import load_checkpoint
    from litert.verify import _stored_float_dtype, load_reference, reference_attention

    for family in TINY_FAMILIES:
        package = Path(importlib.import_module(f"litert_{family}").__file__).parent / "tiny"
        tiny = next(p for p in package.iterdir() if (p / "config.json").is_file())
        ckpt_dir = shutil.copytree(tiny, tmp_path / family)
        for f in ckpt_dir.glob("*.safetensors"):
            state = load_file(f)
            cast = {k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in state.items()}
            save_file(cast, f, metadata={"format": "pt"})
        config = json.loads((ckpt_dir / "config.json").read_text())
        config.pop("torch_dtype", None)
        (ckpt_dir / "config.json").write_text(json.dumps({**config, "dtype": dtype}))
        ckpt = load_checkpoint(ckpt_dir)
        assert _stored_float_dtype(ckpt) in ("BF16", "F16")
        ours = load_reference(ckpt)
        attention = reference_attention(config)
        theirs = AutoModelForCausalLM.from_pretrained(ckpt_dir, dtype=torch.float32, attn_implementation=attention)
        theirs.eval()
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys(), family
        assert [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])] == [], family
        buffers = dict(theirs.named_buffers())
        assert all(torch.equal(v, buffers[k]) and v.dtype == buffers[k].dtype for k, v in ours.named_buffers()), family
        ids = torch.tensor([[2, 5, 7, 11, 13, 17, 19, 23]])
        with torch.no_grad():
            assert torch.equal(ours(ids).logits, theirs(ids).logits), family


def test_reference_attention_computes_what_eager_attention_computes(tmp_path: Path) -> None:
    """The reference runs on PyTorch's fused attention (faster on the long prompt) where
    eager attention was used before: on each family's tiny checkpoint, a prompt longer than
    any sliding window and greedy steps on the cache give the same tokens, and logits within
    1e-4 (float32 rounding of another summation order)."""
    import importlib

    import torch
    from transformers import AutoModelForCausalLM

    from litert.checkpoint import load_checkpoint
    from litert.verify import _reference_along, load_reference

    for family in TINY_FAMILIES:
        package = Path(importlib.import_module(f"litert_{family}").__file__).parent / "tiny"
        tiny = next(p for p in package.iterdir() if (p / "config.json").is_file())
        ours = load_reference(load_checkpoint(tiny))
        assert ours.config._attn_implementation == "sdpa", family  # no tiny checkpoint soft-caps attention
        eager = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32, attn_implementation="eager").eval()
        ids = [(7 * i + 3) % 200 + 2 for i in range(150)]
        a, b = _reference_along(ours, ids, [], 12), _reference_along(eager, ids, [], 12)
        assert a.greedy == b.greedy, family
        assert float((a.greedy_logits - b.greedy_logits).abs().max()) < 1e-4, family


def test_reference_read_module_by_module_from_the_checkpoint_is_the_loaded_one_to_the_bit(tmp_path: Path) -> None:
    """For models whose float32 copy does not fit, accelerate reads each module's weights from
    the checkpoint's safetensors as it runs: on each family's tiny checkpoint the same logits
    along a path and the same greedy answer up to its parting from the path, bit for bit, and
    nothing written beside. (Not Gemma 4's multimodal model, whose forward reads a weight
    outside its module: verify says so in one line; a Gemma 4 too large for its float32
    reference is too large for the native exporter, 12.5 bytes per parameter, anyway.)"""
    import importlib

    import torch

    from litert.checkpoint import load_checkpoint
    from litert.verify import _reference_along, load_reference

    for family in [f for f in TINY_FAMILIES if f != "gemma4"]:
        package = Path(importlib.import_module(f"litert_{family}").__file__).parent / "tiny"
        ckpt = load_checkpoint(next(p for p in package.iterdir() if (p / "config.json").is_file()))
        (tmp_path / family).mkdir()
        loaded, offloaded = load_reference(ckpt), load_reference(ckpt, tmp_path / family)
        assert not any(p.device.type == "cpu" for p in offloaded.parameters()), family  # nothing loaded
        ids = [(7 * i + 3) % 200 + 2 for i in range(40)]
        path = _reference_along(loaded, ids, [], 6).greedy
        path[3] = (path[3] + 1) % 200 + 2
        a, b = _reference_along(loaded, ids, path, 6), _reference_along(offloaded, ids, path, 6, own=1)
        assert b.greedy == a.greedy[:4], family  # up to the parting, its own choice there included
        assert torch.equal(a.path_logits, b.path_logits), family
        assert torch.equal(a.greedy_logits[:4], b.greedy_logits), family
        assert list((tmp_path / family).iterdir()) == [], family


@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("parting", [None, 0, 5, 10])
def test_reference_along_the_bundles_path_is_its_greedy_decode(
    parting: int | None, crop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference reads the bundle's greedy continuation in one forward pass and takes it
    as its own greedy continuation for as long as its choices agree; from a parting it decodes
    from a copy of the prompt's cache. On each family's tiny checkpoint (sliding windows, a
    convolution state, shared KV, a linear attention), given its own greedy tokens altered at `parting`: the same
    greedy tokens and logits as decoding token by token, and along the altered path the
    logits that feeding it token by token gives. Both ways back to a parting: the cache cut
    (`crop`) and a copy of the prompt's cache."""
    import importlib

    import torch

    from litert import verify
    from litert.checkpoint import load_checkpoint
    from litert.verify import _reference_along, load_reference

    monkeypatch.setattr(verify, "CROP_CACHE", crop)
    for family in TINY_FAMILIES:
        package = Path(importlib.import_module(f"litert_{family}").__file__).parent / "tiny"
        tiny = next(p for p in package.iterdir() if (p / "config.json").is_file())
        model = load_reference(load_checkpoint(tiny))
        ids = [(7 * i + 3) % 200 + 2 for i in range(90)]
        plain = _reference_along(model, ids, [], 12)  # no path: decoded token by token
        greedy, logits = plain.greedy, plain.greedy_logits
        path = list(greedy)
        if parting is not None:
            path[parting] = (path[parting] + 1) % 200 + 2
        found = _reference_along(model, ids, path, 12)
        assert found.greedy == greedy, family
        assert float((found.greedy_logits - logits).abs().max()) < 1e-4, family
        with torch.no_grad():  # the path fed token by token
            out = model(torch.tensor([ids]), use_cache=True)
            cache, rows = out.cache, [out.logits[0, -1]]
            for token in path[:-1]:
                out = model(torch.tensor([[token]]), cache=cache, use_cache=True)
                cache = out.cache
                rows.append(out.logits[0, -1])
        assert float((found.path_logits - torch.stack(rows)).abs().max()) < 1e-4, family


def test_the_bundles_model_runs_the_same_from_memory_from_its_own_file_and_copied_out(
    qwen3_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A conversion's check maps the .tflite it just wrote; `litert verify` reads a small
    # bundle's model into memory and copies a large one (over 1 GB) out into a file.
    import numpy as np

    from litert import tflite_runner
    from litert.bundle import read_bundle
    from litert.tflite_runner import BundleModel

    info = read_bundle(qwen3_bundle)
    own = tmp_path / "model.tflite"
    own.write_bytes(info.read(info.models()["tf_lite_prefill_decode"]))
    ids = [2, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]

    def logits(**kwargs) -> tuple[np.ndarray, list[str]]:
        work = tmp_path / f"work-{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        with BundleModel(qwen3_bundle, workdir=work, **kwargs) as model:
            copied = [p.name for d in work.iterdir() for p in d.iterdir() if p.suffix == ".tflite"]
            return model.next_token_logits(ids), copied

    in_memory, none = logits()
    mapped, not_copied = logits(tflite=own)
    monkeypatch.setattr(tflite_runner, "IN_MEMORY_BYTES", 0)
    copied_out, copied = logits()
    assert none == not_copied == [] and copied == ["model.tflite"]
    assert np.array_equal(in_memory, mapped) and np.array_equal(in_memory, copied_out)
