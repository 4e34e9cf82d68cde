"""Text descriptors: what drift compares about the inputs themselves, one value per text,
computed without a model (and the same wherever the text is seen, so a server can log them).

    words, characters   whitespace-split words and characters of the text
    url                 the text holds a link (http://, https://, www.)
    mention             an @mention (TweetEval masks every user as "@user"; it still counts)
    hashtag             a #hashtag
    emoji               a pictographic emoji or symbol character (not an escaped "\\ud83d" text)
    elongated           a word with a letter repeated three or more times ("soooo", "lmaooo")
    non_ascii           any character outside ASCII
    empty               no visible character (textgate.text.is_empty_text)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from textgate.text import is_empty_text

__all__ = ["RATE_DESCRIPTORS", "TextDescriptors", "describe_texts"]

_URL = re.compile(r"https?://\S+|\bwww\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w+")
_HASHTAG = re.compile(r"(?<![\w#&])#\w+")
# Pictographs, emoticons, transport, supplemental symbols, dingbats and the emoji presentation
# selector; flags (regional indicators) too. Plain punctuation and letters never match.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\U0001F1E6-\U0001F1FF]")
# A letter (any script, not a digit or underscore) three or more times in a row, outside links.
_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")

# The yes/no descriptors, in report order, with the words the report uses for them.
RATE_DESCRIPTORS = {
    "url": "texts with a URL",
    "mention": "texts with an @mention",
    "hashtag": "texts with a #hashtag",
    "emoji": "texts with an emoji",
    "elongated": "texts with an elongated word",
    "non_ascii": "texts with non-ASCII characters",
    "empty": "empty texts",
}


@dataclass(frozen=True, eq=False)
class TextDescriptors:
    """One entry per text for each descriptor (see the module docstring)."""

    words: np.ndarray  # int64
    characters: np.ndarray  # int64
    url: np.ndarray  # bool, and so on for every RATE_DESCRIPTORS key
    mention: np.ndarray
    hashtag: np.ndarray
    emoji: np.ndarray
    elongated: np.ndarray
    non_ascii: np.ndarray
    empty: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    def take(self, rows: np.ndarray) -> TextDescriptors:
        return TextDescriptors(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def describe_texts(texts: Sequence[str]) -> TextDescriptors:
    """The descriptors of every text, in order."""
    n = len(texts)

    def flags(test) -> np.ndarray:
        return np.fromiter((bool(test(t)) for t in texts), dtype=bool, count=n)

    return TextDescriptors(
        words=np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=n),
        characters=np.fromiter((len(t) for t in texts), dtype=np.int64, count=n),
        url=flags(_URL.search),
        mention=flags(_MENTION.search),
        hashtag=flags(_HASHTAG.search),
        emoji=flags(_EMOJI.search),
        elongated=flags(lambda t: _ELONGATED.search(_URL.sub(" ", t))),
        non_ascii=flags(lambda t: not t.isascii()),
        empty=flags(is_empty_text),
    )
