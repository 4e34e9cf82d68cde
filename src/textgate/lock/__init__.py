"""Pin a classifier and say exactly which layer changed its behaviour: `textgate lock`,
`textgate verify`, `textgate pull`. Start at ``build.py`` (what a lock records), then
``verify.py`` (how it is compared). ``license.py`` reads model-card licenses, ``pull.py``
copies a model for an offline deploy, ``canary.jsonl`` is the bundled canary set. The file
format, and the check that loading runs, are :mod:`textgate.model.lock_file`.
"""

from textgate.lock.build import (
    CANARY_DECIMALS,
    CANARY_TOLERANCE,
    PROBES,
    build_lock,
    lock_summary,
    read_canary_texts,
)
from textgate.lock.license import (
    allowlist,
    card_license,
    license_failures,
    require_allowed_licenses,
)
from textgate.lock.pull import PullResult, pull_model
from textgate.lock.verify import (
    CanaryComparison,
    SectionResult,
    VerifyResult,
    verify_lock,
)
from textgate.model.lock_file import (
    LOCK_VERSION,
    Change,
    Lock,
    LockedCanary,
    enforce_lock,
    read_lock,
    write_lock,
)

__all__ = [
    "CANARY_DECIMALS",
    "CANARY_TOLERANCE",
    "LOCK_VERSION",
    "PROBES",
    "CanaryComparison",
    "Change",
    "Lock",
    "LockedCanary",
    "PullResult",
    "SectionResult",
    "VerifyResult",
    "allowlist",
    "build_lock",
    "card_license",
    "enforce_lock",
    "license_failures",
    "lock_summary",
    "pull_model",
    "read_canary_texts",
    "read_lock",
    "require_allowed_licenses",
    "verify_lock",
    "write_lock",
]
