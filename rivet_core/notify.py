"""Run notifications: the ``[notifications]`` table, its checks, and the delivery of one
invocation's outcome to JSON webhooks and Slack incoming webhooks.

A target (``[[notifications.webhook]]`` or ``[[notifications.slack]]``) names the events it
wants: ``failure`` (an export failed), ``quality`` (a quality gate did not pass),
``schema_change`` (an export's schema drifted) or ``success`` (the run succeeded). After
the exports of an invocation, :func:`notify` POSTs once to every target one of whose events
occurred. Delivery never raises and never changes the run's outcome: a target that cannot be
reached costs a warning string, which the caller prints.

A webhook URL carries its token, so it is a secret wherever it comes from: it is registered
with :mod:`rivet_core.redact`, never printed, and shown as ``https://host/…``. Everything
sent or returned passes through :func:`~rivet_core.redact.redact`.

Not here: when notifications are sent (the run command), the run summary's shape
(:mod:`rivet_core.runner.results`), the reading of URL references (shared with the database
sources, :mod:`rivet_core.config.connection`).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import cattrs

from rivet_core import __version__
from rivet_core.config.connection import ConnectionConfig
from rivet_core.config.converter import did_you_mean, flatten, join, toml_kind
from rivet_core.config.models import doc
from rivet_core.redact import redact, register_secret

Add = Callable[..., None]

EVENTS = ("failure", "quality", "schema_change", "success")
"""Every event a target may name in ``on``, in the order payloads list them."""
KINDS = ("webhook", "slack")
"""The keys of ``[notifications]``: one array of tables per kind of target."""

TIMEOUT_BOUNDS = (0.0, 60.0)
"""``timeout_s`` must be above the first and at most the second: the run waits for its
notifications, so a dead endpoint must not hold it for long."""
MAX_RETRIES = 5
BACKOFF_S = 0.5
"""Delay before the first retry; it doubles each retry, never beyond ``timeout_s``."""

_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding",
                               "user-agent", "connection"})
_SENSITIVE_HEADER = re.compile(r"auth|token|secret|key|signature|password|cookie|session",
                               re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MIN_SECRET_PATH = 16
"""A URL path this long is registered as a secret on its own (Slack's
``/services/T…/B…/…`` is 60-odd characters); shorter ones (``/hook``, ``/api``) are not
tokens, and masking them would shred unrelated output."""
_MAX_SLACK_EXPORTS = 20
_MAX_SECTION = 2900
"""Slack refuses a section text over 3000 characters."""
_MAX_ERROR_LINE = 300
_MAX_BODY = 200
"""Characters of an error response body quoted in a warning (Slack explains itself there:
``invalid_payload``, ``no_service``)."""


def _register_url(url: str | None) -> None:
    """Register an inline or resolved webhook URL, and its path (where the token lives),
    so that neither can be printed."""
    if not url:
        return
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(rest) >= _MIN_SECRET_PATH:
        register_secret(rest)


def safe_location(url: str) -> str:
    """``scheme://host[:port]/…``: where a URL points without its path, query or userinfo,
    which may hold a token."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if not parts.scheme or not parts.hostname:
        return "(unparsable URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/…"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL, or None. The message never quotes the URL."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        shown = f" (got {parts.scheme!r})" if parts.scheme else ""
        return f"must be an http:// or https:// URL{shown}"
    if not parts.hostname:
        return "has no host"
    return None


# -------------------------------------------------------------------------------- config


@attrs.frozen(kw_only=True)
class Target:
    """The keys every kind of target has: where it is, which events send it, and how hard
    to try."""

    url: str | None = doc(
        "The endpoint URL. It holds a token, so it is treated as a secret (never printed); "
        "prefer `url_env` or `url_file`. Exactly one of `url`, `url_env`, `url_file`.",
        default=None, repr=False,
    )
    url_env: str | None = doc("Name of an environment variable holding the URL.", default=None)
    url_file: str | None = doc(
        "File holding the URL (trimmed), relative to the config file's directory.", default=None
    )
    on: tuple[str, ...] = doc(
        "Events that send this notification, any of `failure` (an export failed), `quality` "
        "(a quality gate did not pass, `fail` or `warn`), `schema_change` (an export's "
        "schema drifted) and `success` (every export succeeded or was skipped). At most one "
        "message per invocation, naming those of these events that occurred. Default "
        "`[\"failure\"]`.",
        default=("failure",),
    )
    timeout_s: float = doc(
        "Seconds each attempt may take (above 0, at most 60).", default=10.0
    )
    retries: int = doc(
        "Further attempts after a connection error, a timeout, HTTP 429 or 5xx (0..5); "
        "a `Retry-After` is honoured up to `timeout_s`. Other answers are not retried.",
        default=2,
    )

    def __attrs_post_init__(self) -> None:
        # Registered as soon as the value exists, before any message could quote it.
        _register_url(self.url)

    def reference(self) -> ConnectionConfig:
        """The URL keys as the database sources' connection keys, whose reading of
        variables and files (and their messages) notifications share."""
        return ConnectionConfig(url=self.url, url_env=self.url_env, url_file=self.url_file)

    def location(self) -> str:
        """Where the target points, printable: ``https://host/…``, or the reference when
        the URL is not inline."""
        if self.url is not None:
            return safe_location(self.url)
        if self.url_env is not None:
            return f"${self.url_env}"
        return f"url_file {self.url_file!r}"


@attrs.frozen(kw_only=True)
class WebhookTarget(Target):
    """``[[notifications.webhook]]``: the run summary POSTed as JSON,
    ``{"event": [...], "summary": {...}}``."""

    headers: dict[str, str] = doc(
        "Extra request headers, e.g. `{ Authorization = \"Bearer ${HOOK_TOKEN}\" }`. Values "
        "are never printed; those of headers whose name suggests a credential (`auth`, "
        "`token`, `key`, `secret`, `signature`, `password`, `cookie`, `session`) are also "
        "masked wherever they appear. `Content-Type`, `User-Agent`, `Host` and the framing "
        "headers are Rivet's.",
        factory=dict, repr=False,
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for name, value in self.headers.items():
            if _SENSITIVE_HEADER.search(name):
                register_secret(value)
                # "Bearer <token>": the token alone may show up too.
                register_secret(value.split(" ", 1)[-1])


@attrs.frozen(kw_only=True)
class SlackTarget(Target):
    """``[[notifications.slack]]``: a message to a Slack incoming webhook
    (``https://hooks.slack.com/services/…``)."""


@attrs.frozen(kw_only=True)
class NotificationsConfig:
    """``[notifications]``: where to report the outcome of each invocation."""

    webhook: list[WebhookTarget] = doc(
        "`[[notifications.webhook]]` entries: JSON POSTs of the run summary.", factory=list
    )
    slack: list[SlackTarget] = doc(
        "`[[notifications.slack]]` entries: Slack incoming-webhook messages.", factory=list
    )

    def targets(self) -> list[tuple[str, Target]]:
        """Every target with its TOML path relative to ``[notifications]`` (``slack[0]``)."""
        return [(f"webhook[{i}]", t) for i, t in enumerate(self.webhook)] + \
               [(f"slack[{i}]", t) for i, t in enumerate(self.slack)]


_TARGET_CLASSES: dict[str, type[Target]] = {"webhook": WebhookTarget, "slack": SlackTarget}


def structure_notifications(
    value: Any, converter: cattrs.Converter, path: str, add: Add
) -> NotificationsConfig | None:
    """The ``[notifications]`` table structured with the config converter and checked by
    :func:`check_notifications`; every problem goes to ``add``, and None is returned if
    there was any.

    The converter alone would read ``[notifications.slack]`` (one table, not an array) as
    an array of its keys, and ``on = "failure"`` as seven one-letter events; both shapes
    are caught here with a message that says what to write."""
    if not isinstance(value, dict):
        add(path, f"expected a table, got {toml_kind(type(value).__name__)}")
        return None
    count = 0

    def report(where: str, message: str, hint: str | None = None) -> None:
        nonlocal count
        count += 1
        add(where, message, hint)

    for key in value:
        if key not in KINDS:
            report(join(path, key), "unknown key", did_you_mean(key, list(KINDS)))
    built: dict[str, list[Any]] = {}
    for kind in KINDS:
        entries = value.get(kind, [])
        where = join(path, kind)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            report(where, "must be an array of tables",
                   f"write [[{where}]] (double brackets) once per target")
            continue
        built[kind] = []
        for index, entry in enumerate(entries):
            entry_path = join(where, index)
            on = entry.get("on", [])
            if not isinstance(on, list):
                report(join(entry_path, "on"), f"expected an array of event names, got "
                       f"{toml_kind(type(on).__name__)}", 'write e.g. on = ["failure"]')
                # Checked without it, so the entry's other problems are reported too.
                entry = {k: v for k, v in entry.items() if k != "on"}
            try:
                target = converter.structure(entry, _TARGET_CLASSES[kind])
            except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
                for problem in flatten(exc, entry_path):
                    report(*problem)
                continue
            _check_target(target, entry_path, report)
            built[kind].append(target)
    return None if count else NotificationsConfig(**built)


def check_notifications(config: NotificationsConfig, path: str, add: Add) -> None:
    """The cross-field rules of ``[notifications]``: exactly one URL key, an http(s) URL,
    known events, bounded timeout and retries, usable headers. Reads no variable or file
    (see :func:`check_notification_references`)."""
    for key, target in config.targets():
        _check_target(target, f"{path}.{key}", add)


def _check_target(target: Target, where: str, add: Add) -> None:
    given = [k for k in ("url", "url_env", "url_file") if getattr(target, k) is not None]
    if len(given) != 1:
        add(where, "specify exactly one of 'url', 'url_env', 'url_file'"
            + (f" (got {', '.join(given)})" if given else ""),
            "prefer url_env or url_file: a webhook URL holds its token")
    if target.url is not None:
        problem = url_problem(target.url)
        if problem:
            add(f"{where}.url", problem)
    for name in ("url_env", "url_file"):
        if getattr(target, name) == "":
            add(f"{where}.{name}", "must not be empty")
    _check_events(target.on, f"{where}.on", add)
    timeout = target.timeout_s
    low, high = TIMEOUT_BOUNDS
    if not math.isfinite(timeout) or not low < timeout <= high:
        add(f"{where}.timeout_s", f"must be above {low:g} and at most {high:g} seconds, "
            f"got {timeout}")
    if not 0 <= target.retries <= MAX_RETRIES:
        add(f"{where}.retries", f"must be 0..{MAX_RETRIES}, got {target.retries}")
    if isinstance(target, WebhookTarget):
        _check_headers(target.headers, f"{where}.headers", add)


def _check_events(on: tuple[str, ...], where: str, add: Add) -> None:
    if not on:
        add(where, "names no event, so this target would never be notified",
            f"use any of {', '.join(EVENTS)}")
    for index, event in enumerate(on):
        if event not in EVENTS:
            choices = ", ".join(repr(e) for e in EVENTS)
            add(f"{where}[{index}]", f"must be one of {choices}, got {event!r}",
                did_you_mean(event, list(EVENTS)))


def _check_headers(headers: dict[str, str], where: str, add: Add) -> None:
    for name, value in headers.items():
        key = join(where, name)
        if not _HEADER_NAME.match(name):
            add(key, "is not a valid HTTP header name")
        elif name.lower() in _RESERVED_HEADERS:
            add(key, "is set by Rivet and cannot be overridden")
        if any(c in value for c in "\r\n\x00"):
            # The value is not quoted: it may be a credential.
            add(key, "value contains a line break or NUL character")


def check_notification_references(
    config: NotificationsConfig, path: str, add: Add, config_dir: Path
) -> None:
    """The environment variables and files the targets' URLs are read from: set, readable,
    and holding an http(s) URL. For commands that send notifications (``rivet run``)."""
    for key, target in config.targets():
        where = f"{path}.{key}"
        reference = target.reference()
        issues = reference.reference_issues(config_dir)
        for sub, message in issues:
            add(f"{where}.{sub}", message)
        if issues or target.url is not None:
            continue
        url = reference.read_url(config_dir)
        if url is None:
            continue
        _register_url(url.strip())
        problem = url_problem(url.strip())
        if problem:
            name = "url_env" if target.url_env is not None else "url_file"
            source = (f"environment variable {target.url_env!r}" if target.url_env is not None
                      else f"file {target.url_file!r}")
            add(f"{where}.{name}", f"{source} does not hold a usable URL: the URL {problem}")


# -------------------------------------------------------------------------------- events


def _exports(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The export dicts of a run summary; anything malformed is left out, not raised on."""
    exports = run.get("exports")
    return [e for e in exports if isinstance(e, Mapping)] if isinstance(exports, list) else []


def run_events(run: Mapping[str, Any]) -> list[str]:
    """The events a run summary shows, in :data:`EVENTS` order."""
    exports = _exports(run)
    failure = run.get("status") == "failed" or any(e.get("status") == "failed"
                                                   for e in exports)
    happened = {
        "failure": failure,
        "quality": any(_failed_gates(e) for e in exports),
        "schema_change": any(_drift(e) is not None for e in exports),
        "success": run.get("status") == "success" and not failure,
    }
    return [event for event in EVENTS if happened[event]]


def _failed_gates(export: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    gates = export.get("quality")
    if not isinstance(gates, list):
        return []
    return [g for g in gates if isinstance(g, Mapping) and g.get("passed") is False]


def _drift(export: Mapping[str, Any]) -> Mapping[str, Any] | None:
    drift = export.get("schema_drift")
    return drift if isinstance(drift, Mapping) and drift.get("changed") is True else None


# ------------------------------------------------------------------------------ payloads


def _redacted(value: Any) -> Any:
    """``value`` as JSON data with every string redacted. Strings are redacted one by one
    (not the encoded document) so that a secret JSON would escape is still found."""
    if isinstance(value, Mapping):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def webhook_payload(events: list[str], run: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document a webhook receives: the events that sent it and the summary."""
    return {"event": list(events), "summary": _redacted(run)}


_ICON = {"success": ":white_check_mark:", "failed": ":x:", "skipped": ":white_circle:"}


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; anything else in mrkdwn is literal enough.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _headline(events: list[str], run: Mapping[str, Any]) -> str:
    exports = _exports(run)
    failed = sum(e.get("status") == "failed" for e in exports)
    noun = "export" if len(exports) == 1 else "exports"
    if "failure" in events or run.get("status") == "failed":
        head = f"Rivet run failed: {failed} of {len(exports)} {noun} failed"
    elif run.get("status") == "success":
        head = f"Rivet run succeeded: {len(exports)} {noun}"
    else:
        head = f"Rivet run {run.get('status', 'finished')}: {len(exports)} {noun}"
    notes = [label for event, label in (("quality", "quality gates not passed"),
                                        ("schema_change", "schema changed"))
             if event in events]
    return head + (f" ({', '.join(notes)})" if notes else "")


def _export_section(export: Mapping[str, Any]) -> str:
    status = str(export.get("status", "?"))
    rows = _count(export.get("rows"))
    files = _count(export.get("files"))
    seconds = _count(export.get("duration_ms")) / 1000
    lines = [f"{_ICON.get(status, ':grey_question:')} *{_mrkdwn(str(export.get('export')))}* "
             f"{_mrkdwn(status)} · {rows:,} rows · {files} file{'' if files == 1 else 's'} · "
             f"{seconds:.1f} s"]
    error = export.get("error")
    if error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        lines.append(f"> {_mrkdwn(_clip(first, _MAX_ERROR_LINE))}")
    for gate in _failed_gates(export):
        line = (f"quality `{_mrkdwn(str(gate.get('gate')))}` "
                f"({_mrkdwn(str(gate.get('severity', 'fail')))})")
        if gate.get("message"):
            line += f": {_mrkdwn(str(gate['message']))}"
        if "observed" in gate or "expected" in gate:
            line += (f" (observed {_mrkdwn(str(gate.get('observed')))}, expected "
                     f"{_mrkdwn(str(gate.get('expected')))})")
        lines.append(line)
    drift = _drift(export)
    if drift is not None:
        changes = drift.get("changes")
        detail = ""
        if isinstance(changes, list) and changes:
            shown = "; ".join(_mrkdwn(str(c)) for c in changes[:5])
            more = f"; … {len(changes) - 5} more" if len(changes) > 5 else ""
            detail = f": {shown}{more}"
        lines.append(f"schema changed{detail}")
    return _clip(redact("\n".join(lines)), _MAX_SECTION)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(events: list[str], run: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: a one-line ``text`` (what notifications show) and
    blocks with one section per export (status, rows, files, duration, the error line,
    the gates that did not pass, the schema drift)."""
    headline = _headline(events, run)
    context = [f"events: {', '.join(events)}"]
    if run.get("config"):
        context.append(f"config `{_mrkdwn(Path(str(run['config'])).name)}`")
    for key in ("run_id", "invocation"):
        if run.get(key):
            context.append(f"run `{_mrkdwn(str(run[key]))}`")
            break
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(headline)}*"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": redact(" · ".join(context))}]},
    ]
    exports = _exports(run)
    # Failures first: with many exports, the ones to act on must not be cut off.
    ordered = sorted(exports, key=lambda e: (e.get("status") != "failed",
                                             not _failed_gates(e), _drift(e) is None))
    for export in ordered[:_MAX_SLACK_EXPORTS]:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": _export_section(export)}})
    if len(ordered) > _MAX_SLACK_EXPORTS:
        blocks.append({"type": "context", "elements": [{
            "type": "mrkdwn", "text": f"… and {len(ordered) - _MAX_SLACK_EXPORTS} more exports"}]})
    return {"text": redact(_mrkdwn(headline)), "blocks": blocks}


# ------------------------------------------------------------------------------ delivery


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answered as errors: following one would send the payload (and any
    credential header) to a host the config does not name."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_body(exc: urllib.error.HTTPError) -> str:
    try:
        data = exc.read(_MAX_BODY * 4)
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        exc.close()
    text = " ".join(data.decode("utf-8", "replace").split())
    return _clip(text, _MAX_BODY)


def post_json(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float,
              retries: int, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """POST ``body`` to ``url``; None once a 2xx arrives, else why it never did (not yet
    redacted). Connection errors, timeouts, 429 and 5xx are retried ``retries`` times
    with a doubling delay, or the ``Retry-After`` delay, each at most ``timeout_s``."""
    opener = urllib.request.build_opener(_NoRedirect)
    attempts = retries + 1
    reason = ""
    for attempt in range(attempts):
        delay = min(BACKOFF_S * 2 ** attempt, timeout_s)
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": f"rivet/{__version__}",
                                                  **headers})
        try:
            with opener.open(request, timeout=timeout_s) as response:
                response.read(64 * 1024)
            return None
        except urllib.error.HTTPError as exc:
            body_text = _error_body(exc)
            reason = f"HTTP {exc.code} {exc.reason}" + (f": {body_text}" if body_text else "")
            if exc.code != 429 and exc.code < 500:
                return reason
            wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            if wait is not None:
                delay = min(wait, timeout_s)
        except urllib.error.URLError as exc:
            cause = exc.reason
            reason = (f"timed out after {timeout_s:g} s" if isinstance(cause, TimeoutError)
                      else f"cannot connect: {cause}")
        except TimeoutError:
            reason = f"timed out after {timeout_s:g} s"
        except (OSError, http.client.HTTPException) as exc:
            reason = f"connection failed: {exc or type(exc).__name__}"
        if attempt + 1 < attempts:
            sleep(delay)
    return f"{reason} ({attempts} attempt{'' if attempts == 1 else 's'})"


def _resolve(target: Target, config_dir: Path) -> tuple[str | None, str | None]:
    """The target's URL, or None and why it cannot be had."""
    reference = target.reference()
    if target.url is None:
        issues = reference.reference_issues(config_dir)
        if issues:
            return None, issues[0][1]
    url = reference.read_url(config_dir)
    if url is None:
        return None, "no URL configured"
    url = url.strip()
    _register_url(url)
    problem = url_problem(url)
    return (None, f"the URL {problem}") if problem else (url, None)


def notify(config: NotificationsConfig | None, run: Mapping[str, Any], *, config_dir: Path,
           path: str = "notifications",
           sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Send the run summary ``run`` to every target one of whose ``on`` events occurred,
    once each, in config order; return a redacted warning for each target that could not
    be notified. Never raises.

    ``run`` is the run command's summary: ``status``, ``config``, ``exports`` (each an
    ``ExportResult.as_dict()``, optionally with ``quality`` and ``schema_drift``), and
    optionally ``run_id`` or ``invocation``. ``config_dir`` anchors ``url_file``."""
    if config is None:
        return []
    warnings: list[str] = []
    try:
        occurred = run_events(run)
    except Exception as exc:  # a notification must never fail the run
        return [redact(f"{path}: notifications not sent: unexpected {type(exc).__name__}: "
                       f"{exc}")]
    for key, target in config.targets():
        events = [event for event in occurred if event in target.on]
        if not events:
            continue
        label = f"{path}.{key}"
        try:
            problem = _deliver(target, events, run, config_dir, sleep)
        except Exception as exc:  # a notification must never fail the run
            problem = f"unexpected {type(exc).__name__}: {exc}"
        if problem is not None:
            warnings.append(redact(f"{label} ({target.location()}): notification not sent: "
                                   f"{problem}"))
    return warnings


def _deliver(target: Target, events: list[str], run: Mapping[str, Any], config_dir: Path,
             sleep: Callable[[float], None]) -> str | None:
    url, problem = _resolve(target, config_dir)
    if url is None:
        return problem
    if isinstance(target, WebhookTarget):
        payload, headers = webhook_payload(events, run), target.headers
    else:
        payload, headers = slack_payload(events, run), {}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    failure = post_json(url, body, headers, timeout_s=target.timeout_s,
                        retries=target.retries, sleep=sleep)
    if failure is None:
        return None
    return f"{safe_location(url)}: {failure}" if target.url is None else failure
