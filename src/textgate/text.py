"""What counts as an empty text: one rule for the guard, eval's dataset summary and the server.

A text is empty when it has no visible content: every character is whitespace, a control
character or an invisible format character (Unicode categories Cc, Cf, Zs, Zl, Zp). Such texts
("", "  ", "\\u200b\\u200b", "\\x00\\x01", "\\u00ad") all reach a model as the same input as "",
so the model's answer on them means nothing.
"""

from __future__ import annotations

import unicodedata

__all__ = ["INVISIBLE_CATEGORIES", "is_empty_text"]

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_empty_text(text: str) -> bool:
    """True when ``text`` has no visible character (see the module docstring)."""
    return all(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in text)
