"""Keeping secrets out of everything Rivet prints or stores.

Two layers: a pattern rule that masks the password in any ``scheme://user:password@host``
URL, and a registry of secret values (passwords read from env vars or files during this
invocation) that are masked wherever they appear verbatim, e.g. inside a driver's message.
Every message, log line, summary, plan and state row passes through :func:`redact`.
"""

from __future__ import annotations

import re
import threading

MASK = "REDACTED"

# scheme://user:password@  — userinfo must hold a ':' and no '/', '?', '#' or whitespace.
_URL_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<pw>[^/?#@\s]*)@"
)
# key=value DSN form (libpq): password=secret or password='sec ret'
_DSN_PASSWORD = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE
)
_MENTIONS_PASSWORD = re.compile("password", re.IGNORECASE).search
"""What :data:`_DSN_PASSWORD` needs to match (its case folding included), found faster."""

_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()
"""The registered secrets, longest first (one that contains another is masked whole),
replaced as a whole under the lock: :func:`redact` reads it without taking the lock."""


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`redact` masks it anywhere it appears.
    Values shorter than 4 characters are not registered: masking them would shred text."""
    global _longest_first
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)
            _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def forget_secrets() -> None:
    """Drop every registered secret (used between in-process CLI invocations in tests)."""
    global _longest_first
    with _lock:
        _secrets.clear()
        _longest_first = ()


def redact(text: str) -> str:
    """``text`` with every password masked. Idempotent; leaves ``user@host`` and emails alone.

    Every log line, summary field and state row passes through here, so text that cannot
    hold a URL password (no ``://``) or a DSN one (no ``password``) skips those patterns."""
    if not text:
        return text
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if _MENTIONS_PASSWORD(text):
        text = _DSN_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
