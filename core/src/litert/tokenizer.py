"""Reading the tokenizer file a bundle will carry, without the runtime.

Used to turn stop-token strings into ids at conversion time and to refuse a tokenizer
that does not contain them, before any minute is spent converting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from litert.errors import LitertError
from litert.types import TokenizerAssets


def check_assets(assets: TokenizerAssets) -> None:
    """The tokenizer file must exist and be of the kind it claims."""
    if not assets.path.is_file():
        raise LitertError(
            f"the checkpoint has no tokenizer file {assets.path.name}",
            f"add {assets.path.name} to {assets.path.parent} (it comes with the original model)",
        )
    if assets.kind not in ("hf_tokenizer_json", "sentencepiece"):
        raise LitertError(
            f"unknown tokenizer kind {assets.kind!r}", "a plugin bug: use hf_tokenizer_json or sentencepiece"
        )


def token_ids(assets: TokenizerAssets, tokens: tuple[str, ...]) -> list[int]:
    """The id of each token string; each must be a single token of the tokenizer."""
    check_assets(assets)
    ids = []
    if assets.kind == "hf_tokenizer_json":
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(assets.path))
        except Exception as exc:
            raise LitertError(f"cannot read {assets.path.name}: {exc}", "re-download the tokenizer") from exc
        lookup = tok.token_to_id
    else:
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor()
        try:
            sp.Load(str(assets.path))
        except Exception as exc:
            raise LitertError(f"cannot read {assets.path.name}: {exc}", "re-download the tokenizer") from exc

        unk = sp.unk_id()
        if unk < 0 or unk >= sp.get_piece_size() or not sp.IsUnknown(unk):
            # The LiteRT-LM runtime refuses such a model ("unk is not defined"), after the export.
            raise LitertError(
                f"{assets.path.name} defines no unknown piece (a piece of type UNKNOWN, usually <unk>), "
                "which the LiteRT-LM runtime requires",
                "use the model's original tokenizer.model",
            )

        def lookup(t: str) -> int | None:
            i = sp.piece_to_id(t)
            return None if i == sp.unk_id() and t != sp.id_to_piece(sp.unk_id()) else i

    for t in tokens:
        i = lookup(t)
        if i is None:
            raise LitertError(
                f"stop token {t!r} is not a token of {assets.path.name}",
                "the tokenizer does not belong to this model; use the checkpoint's own tokenizer",
            )
        ids.append(int(i))
    return ids


PROBES = (
    "What is the capital of France?",
    "  two  spaces, a\ttab, a line\nbreak and\n\ntwo",
    "Unicode: Ä ö ü é ß — “quotes” ½ ﬁ 東京",
    "numbers 12345 and 3.14159",
)
"""Texts the bundle's tokenizer must tokenize as transformers does, beside the chat prompts."""


def _encoder(assets: TokenizerAssets):  # type: ignore[no-untyped-def]
    if assets.kind == "hf_tokenizer_json":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(assets.path))
        return lambda text: tok.encode(text, add_special_tokens=False).ids
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(str(assets.path))
    return lambda text: list(sp.encode(text))


def _control_pieces(assets: TokenizerAssets) -> set[str]:
    """SentencePiece's control and unknown pieces (<bos>, <eos>, <pad>, <unk>): never produced
    from text by design — the runtime writes them as ids — so not compared as text."""
    if assets.kind != "sentencepiece":
        return set()
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(str(assets.path))
    return {sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.IsControl(i) or sp.IsUnknown(i)}


def first_difference(assets: TokenizerAssets, reference, texts: list[str]) -> str | None:  # type: ignore[no-untyped-def]
    """Where the bundle's tokenizer first parts from transformers' on `texts`, or None."""
    ours = _encoder(assets)
    control = _control_pieces(assets)
    for text in texts:
        if text in control:
            continue
        for piece in control:  # a control token written by the template (<bos>): the runtime writes its id
            text = text.replace(piece, "")
        a, b = reference(text), ours(text)
        if a != b:
            i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            return f"{text[:40]!r}: transformers gives id {a[i] if i < len(a) else 'end'} at token {i}, " + (
                f"{assets.path.name} gives {b[i] if i < len(b) else 'end'}"
            )
    return None


def agreeing_assets(checkpoint, assets: TokenizerAssets, special: list[str], chat: list[str]) -> TokenizerAssets:  # type: ignore[no-untyped-def]
    """The tokenizer file to carry, checked against transformers' tokenizer of the checkpoint.

    The runtime tokenizes the rendered prompt with the file the bundle carries; transformers
    (the reference, and what users of the original run) with its own reading of the
    checkpoint. Where they differ — a tokenizer.model that normalizes whitespace or Unicode
    where transformers' converted tokenizer does not, tokens added to tokenizer.json only —
    the bundle would be blamed for answers the prompt changed. So: the plugin's choice if it
    agrees on the chat prompts, every special token and PROBES; else tokenizer.json when that
    agrees; else one line naming the file and the first difference.
    """
    check_assets(assets)
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(checkpoint.path, trust_remote_code=False)
        _encoder(assets)
    except Exception:  # noqa: BLE001 - a file that cannot be read is refused by token_ids, in its words
        return assets
    texts = [*chat, *PROBES, *special]

    def reference(text: str) -> list[int]:
        return list(hf(text, add_special_tokens=False)["input_ids"])

    problem = first_difference(assets, reference, texts)
    if problem is None:
        return assets
    json_path = checkpoint.path / "tokenizer.json"
    if assets.kind == "sentencepiece" and json_path.is_file():
        alternative = TokenizerAssets(kind="hf_tokenizer_json", path=json_path)
        if first_difference(alternative, reference, texts) is None:
            return alternative
    raise LitertError(
        f"{assets.path.name} tokenizes differently from transformers' tokenizer of this checkpoint ({problem}); "
        "the bundle's answers would part from the original's for that reason alone",
        "ship the tokenizer.json transformers writes (save_pretrained) beside it, or repair the tokenizer",
    )


@dataclasses.dataclass(frozen=True)
class BundleTokenizer:
    """The tokenizer a bundle carries, read from the bundle: what the runtime turns tokens into
    text with. transformers' decoder can differ from it on the same ids (a run of byte tokens
    that is not valid UTF-8: transformers prints every byte as U+FFFD, SentencePiece the
    valid ones), so answers are compared as the runtime would have written them."""

    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def bundle_tokenizer(info: Any) -> BundleTokenizer:
    """The tokenizer section of a bundle (litert.bundle.BundleInfo), SentencePiece or HF."""
    import zlib

    if info.section("SP_Tokenizer") is not None:
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor()
        sp.LoadFromSerializedProto(info.read_section("SP_Tokenizer"))
        return BundleTokenizer(encode=lambda text: list(sp.encode(text)), decode=lambda ids: sp.decode(list(ids)))
    from tokenizers import Tokenizer

    raw = info.read_section("HF_Tokenizer_Zlib")
    tok = Tokenizer.from_str(zlib.decompress(raw[8:] if raw[:1] != b"x" else raw).decode())
    return BundleTokenizer(
        encode=lambda text: tok.encode(text, add_special_tokens=False).ids,
        decode=lambda ids: tok.decode(list(ids), skip_special_tokens=False),
    )
