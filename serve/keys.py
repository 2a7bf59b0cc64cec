"""API keys: where they come from, how a request presents one, and the constant-time check.

Keys come from a file (one key per line, or ``NAME:KEY`` to name it in the logs; blank lines and ``#`` comments
skipped) and from ``LEANWORKER_API_KEYS`` (comma-separated, same forms). A request presents a key as ``Authorization:
Bearer KEY`` (what Kimina's client sends; like the Kimina server, a bare ``Authorization: KEY`` is accepted too) or
``X-API-Key: KEY``. A key is never logged: the logs name it by its ``NAME`` or the first 8 hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

KEYS_ENV = "LEANWORKER_API_KEYS"


class KeyFileError(ValueError):
    """The key file cannot be read or holds no usable key."""


@dataclass(frozen=True)
class ApiKey:
    id: str  # what the logs say
    secret: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.secret).digest()


def parse_keys(entries: Iterable[str]) -> list[ApiKey]:
    keys = []
    for entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, secret = entry.partition(":")
        if not sep:
            name, secret = "", entry
        secret = secret.strip()
        if not secret:
            continue
        key_id = name.strip() or hashlib.sha256(secret.encode()).hexdigest()[:8]
        keys.append(ApiKey(key_id, secret.encode()))
    return keys


def load_keys(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> list[ApiKey]:
    """Keys from ``path`` (if given) and ``$LEANWORKER_API_KEYS``. Raises :class:`KeyFileError` for a bad file."""
    keys = parse_keys((environ if environ is not None else os.environ).get(KEYS_ENV, "").split(","))
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read the API key file {path}: {exc}") from None
        from_file = parse_keys(text.splitlines())
        if not from_file:
            raise KeyFileError(f"the API key file {path} holds no key")
        keys += from_file
    return keys


_BLANKS = " \t"  # HTTP's optional whitespace: only these (a header value's \xa0 or \x85 may be half of a UTF-8 letter)
_SEPARATOR = re.compile(r"[ \t]+")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents, or None. ``headers`` keys are lower case (ASGI); values are as Starlette gives
    them, each byte one character (latin-1)."""
    api_key = headers.get("x-api-key")
    if api_key:
        return api_key.strip(_BLANKS)
    authorization = headers.get("authorization")
    if authorization:
        parts = _SEPARATOR.split(authorization.strip(_BLANKS), 1)
        if parts[0].lower() == "bearer":
            return parts[1] if len(parts) == 2 and parts[1] else None
        return authorization.strip(_BLANKS) or None
    return None


def _as_sent(presented: str) -> bytes:
    """The bytes of a presented key as the client sent them: a header value comes one character a byte (latin-1),
    so a key of UTF-8 letters matches the key file's; other text (not from a header) is taken as UTF-8."""
    try:
        return presented.encode("latin-1")
    except UnicodeEncodeError:
        return presented.encode("utf-8", "surrogateescape")


class KeyRing:
    """The configured keys; ``identify(presented)`` is the key's id, or None. Empty: no key is required."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple((key.id, key.digest) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def identify(self, presented: str) -> str | None:
        """Compares the SHA-256 of what is presented with every key's, each in constant time: the time says nothing
        about which key nearly matched, nor about any key's length."""
        candidate = hashlib.sha256(_as_sent(presented)).digest()
        found = None
        for key_id, digest in self._keys:
            if hmac.compare_digest(candidate, digest) and found is None:
                found = key_id
        return found
