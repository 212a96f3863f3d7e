"""Reading the tokenizer file a bundle will carry, without the runtime.

Used to turn stop-token strings into ids at conversion time and to refuse a tokenizer
that does not contain them, before any minute is spent converting.
"""

from __future__ import annotations

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
