"""The one text hash: hex HMAC-SHA256 of a text's UTF-8 bytes under a secret key.

Every ``text_sha256`` textgate writes is ``text_hash(text, key)``: the prediction log's column
(``textgate serve``), the audit's issues.csv/.jsonl and argilla.jsonl (``textgate audit``) and
the changelog of ``textgate audit apply``. Made with the same key, an audit row joins the log
row of the same text: give ``textgate audit --hash-key-file`` the log's key file
(``log_hash_key_file``, or ``<database>.hashkey`` beside a SQLite log).

Keyed, a leaked hash does not tell whether a guessed short text was sent. A file that carries
the text anyway (an audit run without a key file) hashes with ``UNKEYED``, the empty key:
still 64 hex digits, still HMAC-SHA256, but anyone can recompute it, and it does not join a
keyed log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from textgate.errors import ConfigError

__all__ = ["MIN_HASH_KEY_BYTES", "TEXT_HASH_ALGORITHM", "UNKEYED", "read_hash_key", "text_hash", "text_hash_settings"]

logger = logging.getLogger(__name__)

TEXT_HASH_ALGORITHM = "hmac-sha256"
# The key of a hash that protects nothing: for files that carry the text beside it anyway.
UNKEYED = b""
# A shorter secret could be found by trying keys; 16 random bytes cannot.
MIN_HASH_KEY_BYTES = 16


def text_hash(text: str, key: bytes) -> str:
    """Hex HMAC-SHA256 (64 digits) of the UTF-8 text under ``key`` (``UNKEYED`` for no secret).

    A lone surrogate (``"\\ud800"``, from a broken file) is encoded as it stands
    ('surrogatepass'), so no text makes the hash fail; every other text hashes its plain
    UTF-8 bytes."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def text_hash_settings(key: bytes) -> dict[str, object]:
    """How hashes under ``key`` were made, for a file's metadata (never the key itself)."""
    return {"algorithm": TEXT_HASH_ALGORITHM, "keyed": key != UNKEYED}


def read_hash_key(path: Path | str, *, field: str) -> bytes:
    """The key in a key file: its bytes without surrounding whitespace, at least 16 of them.

    ``field``: the setting or option that named the file, for the error (``ConfigError`` with
    that ``field``). Warns when other users may read the file."""
    path = Path(path).expanduser()
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"The hash key file {path} ('{field}') cannot be read ({exc.strerror}); "
                          f"point '{field}' at a readable file.", field=field, path=path) from None
    if len(key) < MIN_HASH_KEY_BYTES:
        raise ConfigError(f"The hash key file {path} ('{field}') holds {len(key)} bytes; a key needs at least "
                          f"{MIN_HASH_KEY_BYTES} (e.g. `openssl rand -hex 32 > {path.name}`).",
                          field=field, path=path)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        logger.warning("the hash key file %s is readable by other users; chmod 600 it", path)
    return key
