"""Log output of the ``rivet`` command: ``-v``/``-vv`` and ``--log-format text|json``.

Rivet's modules log with the standard :mod:`logging` module under the ``rivet.*`` loggers
(``rivet.config``, ``rivet.plan``, ``rivet.runner``, ``rivet.manifest``, ...): warnings
always, a line per step at ``-v`` (info), the detail of every statement at ``-vv`` (debug).
:func:`setup` sends them to stderr, one line per record:

- ``text``: ``rivet: INFO: export orders: committed orders_….parquet (1,000 rows, 12.0 KiB)``;
- ``json``: one JSON object per line with ``time`` (UTC, ISO 8601), ``level``, ``logger`` and
  ``message``, plus ``export`` and ``run_id`` when the record carries them (log calls pass
  them as ``extra``; see :data:`FIELDS`).

Every line is passed through :func:`~rivet_core.redact.redact` whatever the call logged, so
no password reaches the log. Other libraries' records are shown from warnings up only (a
driver's debug output is not Rivet's). Not here: what is logged (each module logs its own
steps).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Literal, TextIO

from rivet_core.redact import redact

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
LEVELS = (logging.NOTSET, logging.INFO, logging.DEBUG)
"""The level of the ``rivet`` loggers for no ``-v`` (the root logger's: warnings), ``-v``
and ``-vv`` (and more)."""
FIELDS = ("export", "run_id")
"""Record attributes a JSON line carries when a log call set them: a log call about one run
passes ``extra={"export": ..., "run_id": ...}`` (``ExportRun.log_extra``)."""


class TextFormatter(logging.Formatter):
    """``rivet: LEVEL: message``, redacted (a traceback too, when the record has one)."""

    def __init__(self) -> None:
        super().__init__("rivet: %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = redact(str(value))
        if record.exc_info:
            line["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup` installs (and replaces on the next call)."""


def setup(verbosity: int, log_format: LogFormat, stream: TextIO) -> None:
    """Send log records to ``stream``: Rivet's from the level ``verbosity`` asks for, other
    libraries' from warnings up. Replaces the handler an earlier call installed (the CLI
    runs many times in one test process, each with its own stream)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("rivet").setLevel(LEVELS[min(max(verbosity, 0), len(LEVELS) - 1)])
