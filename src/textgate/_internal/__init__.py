"""Shared helpers of textgate's own modules (not a public API): TOML, validation, records,
bootstrap, versions. Nothing here imports a textgate module outside ``_internal`` but ``errors``."""
