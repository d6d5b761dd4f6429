"""A database's failures as Rivet errors: transient or permanent, a timeout or not, a hint.

Each SQL source plugin describes its database once, as an :class:`ErrorTable` (data: code
sets, message fragments, hints), and turns every driver exception into a
:class:`~rivet_core.errors.SourceError` with :meth:`ErrorTable.error`. The runner retries a
:class:`~rivet_core.errors.TransientSourceError` on a fresh connection and nothing else;
``reason="timeout"`` is retried only with ``tuning.retry_timeouts``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from rivet_core.errors import SourceError, source_error
from rivet_core.redact import redact

Code = str | int


@attrs.frozen(kw_only=True)
class ErrorTable:
    """How one database's failures are classified and worded.

    With an error code (SQLSTATE, error number), the code decides: transient when it is in
    ``transient_codes`` or starts with one of ``transient_prefixes``; every other code is
    permanent. Without one (the driver failed before the server answered), the message
    decides: permanent if it contains a ``permanent_text`` fragment (a rejected password),
    transient if it contains a ``transient_text`` one, else transient only when the driver
    reported a lost connection."""

    code_label: str
    """How messages name the code: ``"SQLSTATE"`` gives ``(SQLSTATE 57014)``."""
    transient_codes: frozenset[Code] = frozenset()
    transient_prefixes: tuple[str, ...] = ()
    """Code prefixes that are transient as a class (PostgreSQL's ``08``: connection)."""
    timeout_codes: frozenset[Code] = frozenset()
    """Codes meaning the server stopped the statement at its time limit."""
    timeout_text: str | None = None
    """A fragment a timeout code's message must also contain (PostgreSQL uses one code for
    a timeout and for a cancel by request)."""
    permanent_text: tuple[str, ...] = ()
    transient_text: tuple[str, ...] = ()
    hints: Mapping[Code, str] = attrs.field(factory=dict)
    """What the user can do, by code or by code prefix (``"28"``: authentication)."""
    text_hints: Mapping[str, str] = attrs.field(factory=dict)
    """What the user can do, by message fragment, when no code hint applies."""

    def transient(self, code: Code | None, message: str, *,
                  connection_lost: bool = False) -> bool:
        """True when a retry on a fresh connection may succeed."""
        if code:
            return code in self.transient_codes or str(code).startswith(
                self.transient_prefixes)
        lowered = message.lower()
        if any(fragment in lowered for fragment in self.permanent_text):
            return False
        if any(fragment in lowered for fragment in self.transient_text):
            return True
        return connection_lost

    def reason(self, code: Code | None, message: str) -> str | None:
        """``"timeout"`` for a statement stopped at its time limit, else None."""
        if code in self.timeout_codes and (
                self.timeout_text is None or self.timeout_text in message.lower()):
            return "timeout"
        return None

    def hint(self, code: Code | None, message: str) -> str | None:
        if code is not None and code in self.hints:
            return self.hints[code]
        if code:
            for prefix, hint in self.hints.items():
                if isinstance(prefix, str) and str(code).startswith(prefix):
                    return hint
        lowered = message.lower()
        return next((hint for fragment, hint in self.text_hints.items()
                     if fragment in lowered), None)

    def text(self, label: str, code: Code | None, message: str) -> str:
        """``label: first line of the server's message (code)``, not yet redacted."""
        lines = message.strip().splitlines()
        first = lines[0].strip() if lines else "unknown error"
        return f"{label}: {first}" + (f" ({self.code_label} {code})" if code else "")

    def error(self, label: str, code: Code | None, message: str, *,
              connection_lost: bool = False) -> SourceError:
        """The Rivet error for a failed statement: classified, hinted and redacted."""
        return source_error(
            redact(self.text(label, code, message)),
            transient=self.transient(code, message, connection_lost=connection_lost),
            hint=self.hint(code, message), reason=self.reason(code, message))
