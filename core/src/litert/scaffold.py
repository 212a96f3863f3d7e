"""`litert plugins new NAME`: a new family plugin package that installs and passes the kit.

The package is a working plugin for a Llama-style decoder (RMSNorm, SiLU-gated MLP,
RoPE, grouped-query attention; LlamaForCausalLM by default, as used by Llama, SmolLM2,
TinyLlama) with a ChatML prompt format, a tiny checkpoint generator (run once here, so the
package ships a tiny model from the start) and a test file running litert's plugin kit.
Change the claimed architecture, the model config and the prompt format for your family.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from pathlib import Path

from litert import PLUGIN_API_VERSION, __version__
from litert.errors import LitertError

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "litert-{name}"
version = "0.1.0"
description = "{title} family plugin for litert."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["litert>={core_major_minor},<{core_next}"]

[project.entry-points.litert]
{name} = "litert_{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
litert_{module} = ["tiny/*.py", "tiny/{title}-tiny/*"]
"""

README = """\
# litert-{name}

A [litert](https://pypi.org/project/litert/) family plugin: converts `{architecture}`
checkpoints into LiteRT-LM bundles.

    pip install -e .
    litert plugins list
    litert convert ./my-checkpoint
    pytest tests        # litert's plugin kit: claim, hooks, convert, run, parity

The tiny checkpoint in `src/litert_{module}/tiny/{title}-tiny` is rebuilt by
`python src/litert_{module}/tiny/build_tiny.py`.
"""

INIT = '''\
"""litert-{name}: the {title} family plugin for litert.

Keep this module import-light: torch and litert_torch are imported in model.py, which
only `build_model` loads.
"""

from __future__ import annotations

from pathlib import Path

from litert import (
    Checkpoint,
    Claim,
    ExportSettings,
    PluginManifest,
    PromptFormat,
    SamplerDefaults,
    TokenizerAssets,
    hf,
    hookimpl,
)

FAMILY = "{name}"
ARCHITECTURES = ("{architecture}",)
TINY_CHECKPOINT = Path(__file__).parent / "tiny" / "{title}-tiny"

LITERT_PLUGIN = PluginManifest(
    families=(FAMILY,),
    architectures=ARCHITECTURES,
    api_version={api_version},
    tiny_checkpoint=TINY_CHECKPOINT,
)


@hookimpl
def resolve_checkpoint(checkpoint: Checkpoint) -> Claim | None:
    for architecture in ARCHITECTURES:
        if architecture in checkpoint.architectures:
            return Claim(family=FAMILY, checkpoint=checkpoint, architecture=architecture)
    return None


@hookimpl
def export_config(claim: Claim) -> ExportSettings:
    return ExportSettings()


@hookimpl
def build_model(claim: Claim, settings: ExportSettings):
    from litert_{module}.model import build

    return build(claim.checkpoint, settings)


@hookimpl
def tokenizer_assets(claim: Claim) -> TokenizerAssets:
    return TokenizerAssets(kind="hf_tokenizer_json", path=claim.checkpoint.path / "tokenizer.json")


@hookimpl
def prompt_format(claim: Claim) -> PromptFormat:
    # ChatML. Change the markers and stop tokens to your family's.
    return PromptFormat(
        user_prefix="<|im_start|>user\\n",
        user_suffix="<|im_end|>\\n",
        model_prefix="<|im_start|>assistant\\n",
        model_suffix="<|im_end|>\\n",
        system_prefix="<|im_start|>system\\n",
        system_suffix="<|im_end|>\\n",
        stop_tokens=("<|im_end|>",),
        chat_template=hf.chat_template(claim.checkpoint),
    )


@hookimpl
def sampler_defaults(claim: Claim) -> SamplerDefaults:
    return hf.generation_sampler(claim.checkpoint, SamplerDefaults(temperature=0.7, top_p=0.9, top_k=40))
'''

MODEL = '''\
"""The litert-torch model built from config.json (imports torch).

This model code assumes a Llama-shaped decoder: RMSNorm before attention and MLP, a
SiLU-gated MLP, plain RoPE, separate q/k/v/o projections with biases only where
config.json says `attention_bias` / `mlp_bias`, a tied or untied LM head. If your
architecture differs (Qwen2 always has q/k/v biases and no `attention_bias` key; Gemma
centres its norms at zero), change it here: the plugin kit's stress variants compare this
model with transformers on re-drawn weights and fail until it computes the same logits.
"""

from __future__ import annotations

import copy
from typing import Any

from litert import Checkpoint, ExportSettings, LitertError, hf
from litert.modeling import load_weights, skip_init


def model_config(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    import litert_torch.generative.layers.model_config as cfg

    c = checkpoint.config
    if hf.rope_type(c) != "default":
        raise LitertError(f"RoPE scaling {{hf.rope_type(c)!r}} is not supported yet", "use a checkpoint without it")
    if c.get("hidden_act", "silu") != "silu":
        raise LitertError(f"unsupported activation {{c.get('hidden_act')!r}}", "this plugin converts SiLU MLPs")
    hidden = int(hf.require(c, "hidden_size", checkpoint))
    heads = int(hf.require(c, "num_attention_heads", checkpoint))
    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=float(c.get("rms_norm_eps", 1e-6)))
    attn = cfg.AttentionConfig(
        num_heads=heads,
        head_dim=int(c.get("head_dim") or hidden // heads),
        num_query_groups=int(c.get("num_key_value_heads") or heads),
        rotary_base=int(hf.rope_theta(c, default=10000.0)),
        rotary_percentage=1.0,
        qkv_use_bias=bool(c.get("attention_bias", False)),
        output_proj_use_bias=bool(c.get("attention_bias", False)),  # transformers biases o_proj too
    )
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(cfg.ActivationType.SILU),
        intermediate_size=int(hf.require(c, "intermediate_size", checkpoint)),
        use_bias=bool(c.get("mlp_bias", False)),
    )
    block = cfg.TransformerBlockConfig(
        attn_config=attn, ff_config=ff, pre_attention_norm_config=norm, post_attention_norm_config=norm
    )
    return cfg.ModelConfig(
        vocab_size=int(hf.require(c, "vocab_size", checkpoint)),
        num_layers=int(hf.require(c, "num_hidden_layers", checkpoint)),
        max_seq_len=max(settings.kv_cache_max_len, max(settings.prefill_lengths)),
        embedding_dim=hidden,
        block_configs=block,
        final_norm_config=norm,
        lm_head_share_weight_with_embedding=bool(c.get("tie_word_embeddings", False)),
    )


def build(checkpoint: Checkpoint, settings: ExportSettings) -> Any:
    from litert_torch.generative.utilities import model_builder

    config = model_config(checkpoint, settings)
    tied = config.lm_head_share_weight_with_embedding
    names = copy.copy(model_builder.TENSOR_NAMES)
    names.lm_head = None if tied else "lm_head"
    mask_cache = 0 if settings.mask_as_input else settings.kv_cache_max_len
    with skip_init():  # the weights come from the checkpoint: no random initialisation
        model = model_builder.DecoderOnlyModel(config, mask_cache_size=mask_cache)
    return load_weights(model, checkpoint, names, tied_lm_head=tied)
'''

BUILD_TINY = '''\
"""Rebuild the tiny {title} checkpoint: a real Hugging Face layout, trained for a few
seconds on a handful of exchanges so that greedy decoding answers them.

    python build_tiny.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "{title}-tiny"
CHAT_TEMPLATE = (
    "{{% for message in messages %}}{{{{'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + '<|im_end|>' + '\\\\n'}}}}"
    "{{% endfor %}}{{% if add_generation_prompt %}}{{{{ '<|im_start|>assistant\\\\n' }}}}{{% endif %}}"
)
QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("Hello!", "Hello! How can I help you today?"),
]


def main() -> int:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import {transformers_imports}

    torch.manual_seed(0)
    tmp = OUT.with_name(OUT.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [text for pair in QA for text in pair] + ["user\\n", "assistant\\n", "system\\n"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    )
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(
        json.dumps(
            {{
                "tokenizer_class": "PreTrainedTokenizerFast",
                "chat_template": CHAT_TEMPLATE,
                "eos_token": "<|im_end|>",
                "bos_token": None,
                "pad_token": "<|endoftext|>",
                "add_bos_token": False,
            }},
            indent=2,
        )
        + "\\n"
    )
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = {config_class}(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=im_end,
        bos_token_id=None,
        pad_token_id=None,
    )
    model = {architecture}(config)
    seqs = []
    for q, a in QA:
        messages = [{{"role": "user", "content": q}}, {{"role": "assistant", "content": a}}]
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        plen = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        seqs.append((ids, [-100] * plen + ids[plen:]))
    width = max(len(s[0]) for s in seqs)
    input_ids = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)], labels[i, : len(lab)], mask[i, : len(ids)] = torch.tensor(ids), torch.tensor(lab), 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(250):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(tmp)
    GenerationConfig(eos_token_id=im_end, do_sample=True, temperature=0.7, top_p=0.9, top_k=40).save_pretrained(tmp)
    shutil.rmtree(OUT, ignore_errors=True)
    tmp.rename(OUT)
    print(f"wrote {{OUT}} (final loss {{loss.item():.4f}})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

TEST = '''\
"""litert-{name} passes litert's plugin kit."""

import litert_{module}

from litert.testing import PluginConformance


class Test{title}Conformance(PluginConformance):
    plugin = "{name}"
    checkpoint = litert_{module}.TINY_CHECKPOINT
    expected_answer = "Paris"
'''


def create(name: str, directory: Path, architecture: str = "LlamaForCausalLM", build_tiny: bool = True) -> Path:
    """Write the package `litert-NAME` into `directory`; return its root."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise LitertError(
            f"plugin name {name!r} must be lower-case letters, digits and underscores, starting with a letter",
            "e.g. `litert plugins new llama`",
        )
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*ForCausalLM", architecture):
        raise LitertError(
            f"{architecture!r} is not a causal-LM architecture name", "e.g. --architecture LlamaForCausalLM"
        )
    root = directory / f"litert-{name}"
    if root.exists():
        raise LitertError(f"{root} already exists", "choose another --dir or remove it")
    major, minor, *_ = (int(p) for p in __version__.split("."))
    fields = {
        "name": name,
        "module": name,
        "title": "".join(part.capitalize() for part in name.split("_")),
        "architecture": architecture,
        "config_class": architecture.replace("ForCausalLM", "Config"),
        "transformers_imports": ", ".join(
            sorted(
                ["AutoTokenizer", "GenerationConfig", architecture, architecture.replace("ForCausalLM", "Config")],
                key=lambda n: (n.lower() != n and n.upper() == n, n),
            )
        ),
        "api_version": PLUGIN_API_VERSION,
        "core_major_minor": f"{major}.{minor}",
        "core_next": f"{major}.{minor + 1}",
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/litert_{name}/__init__.py": INIT,
        f"src/litert_{name}/model.py": MODEL,
        f"src/litert_{name}/tiny/build_tiny.py": BUILD_TINY,
        f"tests/test_{name}_kit.py": TEST,
    }
    tmp = directory / f".litert-{name}.partial"
    try:
        for rel, template in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(**fields))
        if build_tiny:
            script = tmp / f"src/litert_{name}/tiny/build_tiny.py"
            print(
                f"Training the tiny {architecture} checkpoint the package ships (about a minute)...",
                file=sys.stderr,
                flush=True,
            )
            result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
            if result.returncode != 0:
                tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
                raise LitertError(
                    f"building the tiny {architecture} checkpoint failed: {tail[0]}",
                    f"does transformers know {architecture}? pass --no-tiny and add a tiny checkpoint yourself",
                )
        tmp.rename(root)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return root
