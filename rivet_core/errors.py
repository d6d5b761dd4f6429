"""The error hierarchy every layer raises, and the exit codes the CLI maps them to.

Handled errors carry a one-line message and an optional ``hint``; the CLI prints both and no
traceback. Anything that is not a :class:`RivetError` is a bug and keeps its traceback.
Transient errors (worth a retry on a fresh connection) are marked by :class:`TransientError`.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """Process exit status of the ``rivet`` command."""

    OK = 0  # everything asked for succeeded
    RUN_FAILED = 1  # at least one export failed at run time (source, format or destination)
    USAGE = 2  # the command line itself is wrong (unknown flag, missing argument)
    CONFIG = 3  # the config file is missing, unreadable or invalid; nothing was touched
    PLAN_REJECTED = 4  # the planner rejected an export; nothing was touched
    PLUGIN = 5  # a backend named by the config is not installed, failed to load or is unusable
    CHECK_FAILED = 6  # a check asked for strictness found a problem (check --strict, validate)
    NOT_TRUSTED = 7  # an export's output failed a trust check: a quality gate, schema drift
    # (on_schema_drift = "fail") or --reconcile; nothing of it was certified
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGINT
    BROKEN_PIPE = 141  # the reader of stdout closed it early (`rivet state files | head`):
    # output stopped quietly; 128 + SIGPIPE, what a shell reports for `yes | head`


class RivetError(Exception):
    """Base of every handled error. ``hint`` says what the user can do about it."""

    exit_code: ExitCode = ExitCode.RUN_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(RivetError):
    """The configuration is wrong. ``issues`` holds every problem found, not just the first.

    Its exit code is :attr:`ExitCode.PLUGIN` when an issue is a backend ``type`` that is not
    installed or not usable (installing or fixing a plugin is the remedy, not editing the
    file), else :attr:`ExitCode.CONFIG`; every issue is reported either way."""

    exit_code = ExitCode.CONFIG

    def __init__(self, issues: list[ConfigIssue], *, hint: str | None = None) -> None:
        self.issues = issues
        super().__init__("\n".join(issue.render() for issue in issues), hint=hint)
        if any(issue.missing_backend for issue in issues):
            self.exit_code = ExitCode.PLUGIN


class ConfigIssue:
    """One problem in one config file, located by its TOML path (``exports[1].format``).

    ``missing_backend`` marks a ``type`` naming a backend that is not installed, failed to
    load, or was refused for a bad declaration."""

    __slots__ = ("file", "hint", "message", "missing_backend", "path")

    def __init__(self, file: str, path: str, message: str, hint: str | None = None, *,
                 missing_backend: bool = False) -> None:
        self.file = file
        self.path = path
        self.message = message
        self.hint = hint
        self.missing_backend = missing_backend

    def render(self) -> str:
        where = f"{self.file}: {self.path}: " if self.path else f"{self.file}: "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __repr__(self) -> str:
        return f"ConfigIssue({self.render()!r})"


class UsageError(RivetError):
    """The command line asks for something that does not exist (an unknown export name)."""

    exit_code = ExitCode.USAGE


class PlanRejected(RivetError):
    """The planner found a combination that cannot run safely."""

    exit_code = ExitCode.PLAN_REJECTED


class PluginError(RivetError):
    """A backend is missing, broken, or declared itself inconsistently."""

    exit_code = ExitCode.PLUGIN


class SourceError(RivetError):
    """The database refused or failed the read (syntax, permission, lost connection...)."""


class UnsupportedTypeError(SourceError):
    """A column has a type Rivet cannot write without losing information.

    ``columns`` holds the mapping of every result column (``ColumnInfo``), the unsupported
    ones included, so a type report can still show the whole table."""

    def __init__(self, message: str, *, hint: str | None = None,
                 columns: list[Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.columns = columns or []


class FormatError(RivetError):
    """The file format could not encode the data."""


class DestinationError(RivetError):
    """The destination could not store, commit or list files."""


class TrustError(RivetError):
    """The output of an export failed a check it must pass to be certified: a quality gate
    of severity ``fail``, schema drift with ``on_schema_drift = "fail"``, or a
    ``--reconcile`` mismatch. Never retried."""

    exit_code = ExitCode.NOT_TRUSTED


class StateError(RivetError):
    """The state store is unreadable, locked or inconsistent."""


class TransientError(RivetError):
    """Mixin marking an error as worth retrying on a fresh connection.

    ``reason`` may say what kind of transient failure it is; ``"timeout"`` (a statement
    timeout) is retried only when ``tuning.retry_timeouts`` is on, since a query that ran out
    of time once usually does again."""

    reason: str | None = None


class TransientSourceError(SourceError, TransientError):
    """A source failure that a retry on a fresh connection may cure."""


class TransientDestinationError(DestinationError, TransientError):
    """A destination failure that a retry may cure (timeouts, 5xx)."""


def source_error(message: str, *, transient: bool, hint: str | None = None,
                 reason: str | None = None) -> SourceError:
    """The error a source plugin raises for a failed read: :class:`TransientSourceError`
    (carrying ``reason``, e.g. ``"timeout"``) when a retry may cure it, else
    :class:`SourceError`."""
    if not transient:
        return SourceError(message, hint=hint)
    error = TransientSourceError(message, hint=hint)
    error.reason = reason
    return error
