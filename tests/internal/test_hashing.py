"""The one text hash (``textgate._internal.hashing``): HMAC-SHA256 in full, keyed or not, and
the key file."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from textgate._internal.hashing import (
    MIN_HASH_KEY_BYTES,
    UNKEYED,
    read_hash_key,
    text_hash,
    text_hash_settings,
)
from textgate.errors import ConfigError

KEY = b"k" * 32


def test_text_hash_is_full_hmac_sha256_of_the_utf8_text():
    for text in ("omg this is fire lol", "café ☕ 🎉", ""):
        assert text_hash(text, KEY) == hmac.new(KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()
    assert len(text_hash("abc", UNKEYED)) == 64
    assert text_hash("abc", UNKEYED) == hmac.new(b"", b"abc", hashlib.sha256).hexdigest()


def test_keyed_and_unkeyed_hashes_differ_and_so_do_keys():
    assert text_hash("abc", KEY) != text_hash("abc", UNKEYED)
    assert text_hash("abc", KEY) != text_hash("abc", b"j" * 32)
    assert text_hash("abc", UNKEYED) != hashlib.sha256(b"abc").hexdigest()  # HMAC, even without a key
    assert text_hash_settings(KEY) == {"algorithm": "hmac-sha256", "keyed": True}
    assert text_hash_settings(UNKEYED) == {"algorithm": "hmac-sha256", "keyed": False}


def test_a_lone_surrogate_does_not_break_the_hash():
    assert len(text_hash("broken \ud800 text", KEY)) == 64


def test_key_file_is_stripped_and_errors_name_the_field(tmp_path, caplog):
    path = tmp_path / "log.key"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    path.chmod(0o600)
    assert read_hash_key(path, field="--hash-key-file") == b"0123456789abcdef0123456789abcdef"
    path.write_text("x" * (MIN_HASH_KEY_BYTES - 1))
    with pytest.raises(ConfigError, match="holds 15 bytes; a key needs at least 16") as caught:
        read_hash_key(path, field="--hash-key-file")
    assert caught.value.field == "--hash-key-file" and "--hash-key-file" in str(caught.value)
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        read_hash_key(tmp_path / "missing.key", field="log_hash_key_file")
    assert caught.value.field == "log_hash_key_file" and "'log_hash_key_file'" in str(caught.value)
    path.write_text("0123456789abcdef0123456789abcdef\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="textgate._internal.hashing"):
        read_hash_key(path, field="--hash-key-file")
    assert any("readable by other users" in r.getMessage() for r in caplog.records)
