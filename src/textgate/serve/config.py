"""`ServeConfig`: everything `textgate serve` reads from ``serve.toml``, validated once at start-up.

    host = "127.0.0.1"
    port = 8000
    api_keys = ["..."]                 # plus TEXTGATE_API_KEYS (comma-separated), read at start-up
    log_url = "sqlite:///textgate-predictions.db"   # "" disables the prediction log
    log_ack = "committed"              # 200 only once the log row is durable, else 503 + Retry-After
    log_retry_s = 10                   # retry a busy/locked log database this long
    log_hash_key_file = "log.key"      # secret of the keyed text hash (default: a file beside a SQLite log)
    header_timeout_s = 10              # slow clients are disconnected
    body_timeout_s = 30

    [guard]                            # textgate.guard.GuardRules
    min_confidence = 0.6

    [drift]
    reference = { negative = 0.3, neutral = 0.4, positive = 0.3 }   # or a Predictions .parquet / report.json
    window = 1000

Errors name the field: "Field 'drift.window' in serve.toml: Input should be greater than or equal to 1 (got 0)."
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textgate._internal.toml import read_toml, validate_table
from textgate.errors import ConfigError
from textgate.guard import GuardRules

__all__ = ["DriftConfig", "ServeConfig", "load_serve_config", "reference_shares"]

DEFAULT_API_KEYS_ENV = "TEXTGATE_API_KEYS"


class DriftConfig(BaseModel):
    """Label drift of the live predictions against a reference distribution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: dict[str, float] | str | None = Field(
        None, description="label -> share, or a path to a Predictions .parquet or an eval report.json")
    window: int = Field(1000, ge=1, le=1_000_000, description="the last N final labels compared")

    @field_validator("reference")
    @classmethod
    def _shares_are_valid(cls, value):
        if isinstance(value, dict):
            if not value:
                raise ValueError("the reference distribution is empty; give label = share pairs")
            if any(share < 0 for share in value.values()):
                raise ValueError("shares must be >= 0")
            if sum(value.values()) <= 0:
                raise ValueError("shares must add up to more than 0")
        return value


class ServeConfig(BaseModel):
    """Settings of the HTTP service. Precedence: command-line option > serve.toml > environment > default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token_budget: int = Field(4096, ge=1, description="tokens per forward batch (padded ones for the padded forward)")
    inference_workers: int | None = Field(
        None, ge=1, description="inference threads taking turns at the queue, each with cores/workers torch "
        "threads; default 2 on a machine with 2 or more cores (no barrier stalls when HTTP work takes a core)")
    pin_workers: bool = Field(True, description="pin each inference worker to its own cores (when there are "
                              "enough): two busy workers then never queue behind each other on one core")
    gather_ms: float = Field(8.0, ge=0, le=1000, description="while another worker is busy, a free worker waits "
                             "up to this long for gather_texts texts before running a smaller batch; 0: never waits")
    gather_texts: int = Field(16, ge=1, description="batch size a free worker waits for (see gather_ms)")
    max_queue_texts: int = Field(2048, ge=1, description="texts waiting for the model; beyond -> 503")
    max_texts_per_request: int = Field(64, ge=1)
    max_chars_per_text: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1)
    request_timeout_s: float = Field(10.0, gt=0, description="time from the end of the body to the answer; "
                                     "beyond -> 504 with Retry-After (under log_ack = 'committed' a log row "
                                     "not durable by then -> 503 with Retry-After)")
    header_timeout_s: float = Field(10.0, gt=0, description="a client must send a request's headers within this "
                                    "many seconds of connecting or of its first byte after a response; "
                                    "else the connection is closed")
    body_timeout_s: float = Field(30.0, gt=0, description="a request body must arrive within this many seconds "
                                  "of its headers; else 408 and the connection is closed")
    api_keys: list[str] = Field(default_factory=list, description="accepted API keys; empty: no auth")
    api_keys_env: str = Field(DEFAULT_API_KEYS_ENV, description="environment variable with more keys, comma-separated")
    log_url: str = Field("sqlite:///textgate-predictions.db", description="prediction log; '' disables it")
    log_text: bool = Field(False, description="store raw texts in the prediction log (else only a keyed hash)")
    log_ack: Literal["committed", "queued"] = Field(
        "committed", description="committed: answer 200 only once the request's log rows are durable, else 503 "
        "with Retry-After; queued: answer once they are queued (a crash may lose them)")
    log_retry_s: float = Field(10.0, ge=0, le=3600, description="how long the log writer retries a busy or "
                               "locked database (exponential backoff) before a batch fails")
    log_hash_key: str | None = Field(None, min_length=16, description="secret of the log's keyed text hash "
                                     "(HMAC-SHA256); prefer log_hash_key_file")
    log_hash_key_file: str | None = Field(None, description="file holding that secret (relative to serve.toml); "
                                          "default: <log database>.hashkey beside a SQLite log, created once "
                                          "with mode 0600; required for PostgreSQL")
    guard: GuardRules = Field(default_factory=GuardRules)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[str]) -> list[str]:
        if any(not key.strip() for key in keys):
            raise ValueError("API keys must not be empty or blank")
        return keys

    @model_validator(mode="after")
    def _a_request_fits_the_queue(self):
        if self.max_texts_per_request > self.max_queue_texts:
            raise ValueError(f"max_texts_per_request ({self.max_texts_per_request}) must not exceed "
                             f"max_queue_texts ({self.max_queue_texts}): such a request could never be queued")
        if self.log_hash_key is not None and self.log_hash_key_file is not None:
            raise ValueError("give log_hash_key or log_hash_key_file, not both")
        keyed = self.log_hash_key is not None or self.log_hash_key_file is not None
        if self.log_url.startswith(("postgresql", "postgres")) and not keyed:
            raise ValueError("a PostgreSQL log_url needs log_hash_key_file (a file with at least 16 random bytes, "
                             "e.g. `openssl rand -hex 32 > textgate-log.key`), the secret of the log's keyed text "
                             "hash, shared by every server writing to that log")
        return self

    def resolved_api_keys(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The keys from the file plus those in ``api_keys_env``; call at start-up, not import."""
        environ = os.environ if environ is None else environ
        extra = [key.strip() for key in environ.get(self.api_keys_env, "").split(",")]
        return tuple(dict.fromkeys([*self.api_keys, *(key for key in extra if key)]))


def load_serve_config(path: Path | str) -> ServeConfig:
    """Read ``serve.toml``; relative drift reference and hash key file paths are relative to the file."""
    path = Path(path)
    config = validate_table(ServeConfig, read_toml(path, what="Serve config"), origin=path)
    reference = config.drift.reference
    if isinstance(reference, str) and not Path(reference).is_absolute():
        drift = config.drift.model_copy(update={"reference": str((path.parent / reference).resolve())})
        config = config.model_copy(update={"drift": drift})
    key_file = config.log_hash_key_file
    if key_file is not None and not Path(key_file).expanduser().is_absolute():
        config = config.model_copy(update={"log_hash_key_file": str((path.parent / key_file).resolve())})
    return config


def reference_shares(config: DriftConfig, label_names: Sequence[str]) -> dict[str, float] | None:
    """The drift reference as label -> share (adding up to 1), or None when none is configured.

    A path is read as a textgate Predictions .parquet (shares of predicted labels) or an eval
    ``report.json`` (column sums of its confusion matrix)."""
    reference = config.reference
    if reference is None:
        return None
    if isinstance(reference, str):
        counts = _counts_from_file(Path(reference))
    else:
        counts = dict(reference)
    total = sum(counts.values())
    if total <= 0:
        raise ConfigError(f"Field 'drift.reference': {reference} holds no predictions to derive shares from.",
                          field="drift.reference")
    unknown = sorted(set(counts) - set(label_names))
    if unknown:
        raise ConfigError(f"Field 'drift.reference' names labels the model does not have: {', '.join(unknown)} "
                          f"(model labels: {', '.join(label_names)}).", field="drift.reference")
    return {label: counts.get(label, 0) / total for label in label_names}


def _counts_from_file(path: Path) -> dict[str, float]:
    from textgate.predictions import load_predictions

    if not path.is_file():
        raise ConfigError(f"Field 'drift.reference': {path} does not exist; give label = share pairs, a "
                          "Predictions .parquet or a report.json.", field="drift.reference", path=path)
    if path.suffix == ".parquet":
        return dict(Counter(str(label) for label in load_predictions(path).predicted))
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))["metrics"]
        names, confusion = metrics["label_names"], metrics["confusion"]
        return {str(name): float(sum(row[j] for row in confusion)) for j, name in enumerate(names)}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"Field 'drift.reference': {path} is neither a Predictions .parquet nor an eval "
                          f"report.json with metrics.confusion ({type(exc).__name__}: {exc}).",
                          field="drift.reference", path=path) from exc
