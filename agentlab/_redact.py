"""One credential redactor for everything that leaves a run: traces, OTel spans, the viewer, exports,
console `--json` output and tool outputs shown to the model. Nothing here knows about agents."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# The stricter of the rules this project has used: short keys count too (an `sk-` key or a Bearer
# token of 8+ characters), and a `name=value` credential is redacted whatever the value's length.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_CREDENTIAL_NAMES = r"api[_-]?key|access[_-]?token|token|secret|password|passwd|authorization"
_NAMED = re.compile(
    rf"(?i)({_CREDENTIAL_NAMES})"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;{}\[\]\\]+"
)
# A JSON field whose name says it holds a credential (`api_key`, `auth_token`): its value is one.
_CREDENTIAL_FIELD = re.compile(rf"(?i).*({_CREDENTIAL_NAMES})")
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
# Shorter values would redact ordinary words that happen to be some variable's value.
_MIN_ENV_SECRET_CHARS = 8


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment's credential-like variables, longest first."""
    if environ is None:
        return list(_process_secrets())
    return _secrets_of(environ)


def _secrets_of(environ: Mapping[str, str]) -> list[str]:
    values = {v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_ENV_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


# The process environment's secrets, with the snapshot of the environment they were read from. Every tool
# output is redacted, and walking `os.environ` (each key and value decoded) was ~4% of a many-agent run's
# CPU: the raw table (`os.environ._data` on CPython) is compared with the snapshot instead, a C-level dict
# comparison that notices any variable set, changed or removed through `os.environ`, as the walk did.
_snapshot: tuple[dict[Any, Any], tuple[str, ...]] | None = None


def _process_secrets() -> tuple[str, ...]:
    global _snapshot
    table = getattr(os.environ, "_data", None)
    if not isinstance(table, dict):  # not CPython's os.environ: walk it every time
        return tuple(_secrets_of(os.environ))
    cached = _snapshot
    if cached is not None and cached[0] == table:
        return cached[1]
    copy = dict(table)  # before the walk: a change during it is then noticed by the next call
    secrets = tuple(_secrets_of(os.environ))
    _snapshot = (copy, secrets)
    return secrets


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with credentials replaced by `[redacted]`: the `secrets` values (default: the environment's
    credential-like variables), `sk-` keys, Bearer tokens and `api_key=...`-style values."""
    for value in _process_secrets() if secrets is None else secrets:
        text = text.replace(value, REDACTED)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _SK_KEY.sub(REDACTED, text)
    return _NAMED.sub(rf"\1\2{REDACTED}", text)


def redact_data(data: Any, secrets: list[str] | None = None) -> Any:
    """`data` (JSON-like: dicts, lists, strings) with every string redacted, keys included."""
    if secrets is None:
        secrets = secret_values()
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {redact_data(k, secrets): _redact_field(k, v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(item, secrets) for item in data]
    return data


def _redact_field(name: Any, value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str) and value and isinstance(name, str) and _CREDENTIAL_FIELD.fullmatch(name):
        return REDACTED
    return redact_data(value, secrets)
