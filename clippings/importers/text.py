"""Caption text as the importers store it: Unicode NFC, words joined by single spaces, ALTO hyphenation undone."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def clean(text: str | None) -> str:
    """NFC, whitespace runs collapsed to one space, trimmed; None gives ''."""
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def join_words(words: Iterable[str] | str | None) -> str:
    """Words (a list, or one string) joined by spaces, cleaned; Navigator's per-box OCR is a word list."""
    if words is None:
        return ""
    if isinstance(words, str):
        return clean(words)
    return clean(" ".join(str(w) for w in words))
