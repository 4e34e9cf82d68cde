"""Shared helpers of textgate's own modules (not a public API): TOML, validation, records,
bootstrap, versions, the one text hash (``hashing``). Nothing here imports a textgate module
outside ``_internal`` but ``errors``."""
