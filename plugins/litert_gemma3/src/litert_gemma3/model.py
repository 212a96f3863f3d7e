"""Gemma3 (text) on litert's Gemma-shaped classic decoder, which has everything Gemma3
does (see `litert.classic.GemmaDecoder`): nothing to change here."""

from __future__ import annotations

from litert.classic import GemmaDecoder


class Gemma3(GemmaDecoder):
    pass
