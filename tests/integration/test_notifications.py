"""Notifications delivered to a real HTTP server this file runs on 127.0.0.1: the payload of
each event for each kind of target, ``on`` filtering, retries, timeouts, refused
connections, the config checks, and the webhook URL (which holds a token) never printed.

Every connection the process opens is checked: one to a host that is not loopback fails
the attempt, so no test can reach the network.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest

from rivet_core import __version__
from rivet_core.config.converter import make_converter
from rivet_core.notify import (
    NotificationsConfig,
    check_notification_references,
    notify,
    structure_notifications,
)
from rivet_core.redact import MASK, forget_secrets, redact, register_secret

TOKEN = "T0SECRET/B0SECRET/xoxWebhookToken1234567890"
PATH = f"/services/{TOKEN}"

# --------------------------------------------------------------------------------- server


@attrs.frozen
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0


@attrs.frozen
class Received:
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Endpoint:
    """An HTTP server on 127.0.0.1 that records every request and answers from a script
    (200 ``ok`` once the script is used up)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.received.append(Received(self.path, self.headers, body))
                reply = endpoint.replies.popleft() if endpoint.replies else Reply()
                if reply.delay:
                    endpoint.release.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def url(self, path: str = PATH) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def location(self) -> str:
        return self.url("/…")


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture(autouse=True)
def blocked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection to a host that is not loopback is refused (and recorded); proxies
    from the environment are ignored, so loopback requests go straight to the server."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and \
                not ipaddress.ip_address(address[0]).is_loopback:
            attempts.append(address)
            raise ConnectionRefusedError(111, "non-loopback connection blocked by the test")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_sleep(sleeps: list[float]) -> Callable[[float], None]:
    return sleeps.append


# -------------------------------------------------------------------------------- helpers


def load(text: str) -> NotificationsConfig:
    problems: list[tuple[Any, ...]] = []
    raw = tomllib.loads(text)["notifications"]
    config = structure_notifications(raw, make_converter(), "notifications",
                                     lambda *a: problems.append(a))
    assert problems == []
    assert config is not None
    return config


def problems_of(text: str) -> list[tuple[str, str, str | None]]:
    problems: list[tuple[str, str, str | None]] = []

    def add(path: str, message: str, hint: str | None = None) -> None:
        problems.append((path, message, hint))

    config = structure_notifications(tomllib.loads(text)["notifications"], make_converter(),
                                     "notifications", add)
    assert (config is None) == bool(problems)
    return problems


def export(name: str = "orders", status: str = "success", **extra: Any) -> dict[str, Any]:
    return {
        "export": name, "run_id": f"{name}_20250101T000000.000", "mode": "full",
        "status": status, "rows": 1234, "bytes": 2048, "duration_ms": 3200,
        "files": [{"name": f"{name}_0.parquet", "uri": f"file:///out/{name}_0.parquet",
                   "rows": 1234, "bytes": 2048, "sha256": "ab" * 32, "chunk": None}],
        "error": None, "hint": None, "warnings": [], **extra,
    }


def summary(*exports: dict[str, Any]) -> dict[str, Any]:
    failed = any(e["status"] == "failed" for e in exports)
    return {"config": "/srv/etl/rivet.toml", "status": "failed" if failed else "success",
            "exports": list(exports)}


def assert_no_url(texts: list[str], url: str) -> None:
    for text in texts:
        assert url not in text
        assert TOKEN not in text
        assert "xoxWebhookToken" not in text


def slack_text(message: dict[str, Any]) -> str:
    parts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


FAILED = export("orders", "failed", rows=10, files=[], error="connection to server lost\n"
                "DETAIL: the second line stays out")
GATE = {"gate": "row_count", "severity": "warn", "passed": False, "observed": 0,
        "expected": ">= 1", "message": "too few rows"}
PASSED_GATE = {"gate": "not_null", "severity": "fail", "passed": True, "observed": 0,
               "expected": 0, "message": ""}
DRIFT = {"changed": True, "changes": ["added column note (text)"]}

RUNS = {
    "failure": (summary(FAILED, export("users")),
                ["Rivet run failed: 1 of 2 exports failed", ":x: *orders* failed",
                 "> connection to server lost", ":white_check_mark: *users* success"]),
    "quality": (summary(export(quality=[PASSED_GATE, GATE])),
                ["Rivet run succeeded: 1 export (quality gates not passed)",
                 "quality `row_count` (warn): too few rows (observed 0, expected &gt;= 1)"]),
    "schema_change": (summary(export(schema_drift=DRIFT)),
                      ["(schema changed)", "schema changed: added column note (text)"]),
    "success": (summary(export(), export("users", "skipped", rows=0, files=[])),
                ["Rivet run succeeded: 2 exports",
                 "*orders* success · 1,234 rows · 1 file · 3.2 s",
                 ":white_circle: *users* skipped · 0 rows · 0 files",
                 "config `rivet.toml`"]),
}


# ---------------------------------------------------------------------------------- config


def test_arrays_of_tables_structure_with_the_config_converter() -> None:
    config = load("""
        [[notifications.webhook]]
        url = "https://hooks.example.com/x"
        on = ["failure", "success"]
        timeout_s = 5
        retries = 0
        headers = { "X-Team" = "data" }

        [[notifications.slack]]
        url_env = "SLACK_WEBHOOK_URL"
        [[notifications.slack]]
        url_file = "slack.url"
    """)
    webhook, = config.webhook
    assert (webhook.on, webhook.timeout_s, webhook.retries, webhook.headers) == \
        (("failure", "success"), 5.0, 0, {"X-Team": "data"})
    first, second = config.slack
    assert (first.url_env, first.on, first.timeout_s, first.retries) == \
        ("SLACK_WEBHOOK_URL", ("failure",), 10.0, 2)
    assert second.url_file == "slack.url"
    assert load("[notifications]\n") == NotificationsConfig()


def test_config_problems_are_reported_together_with_their_toml_paths() -> None:
    problems = problems_of(f"""
        [[notifications.webhook]]
        url = "ftp://hooks.example.com{PATH}"
        url_env = "HOOK"
        on = ["falure", "success"]
        timeout_s = 0
        retries = 9
        headers = {{ "Content-Type" = "text/plain", "bad name" = "x" }}

        [[notifications.slack]]
        on = "failure"

        [[notifications.slack]]
        url = "https://hooks.slack.com{PATH}"
        on = []
        timeout_s = 61

        [[notifications.slack]]
        url_env = "SLACK_WEBHOOK_URL"
        chanel = "#data"

        [notifications.email]
    """)
    found = {(path, message) for path, message, _ in problems}
    assert found == {
        ("notifications.email", "unknown key"),
        ("notifications.webhook[0]",
         "specify exactly one of 'url', 'url_env', 'url_file' (got url, url_env)"),
        ("notifications.webhook[0].url", "must be an http:// or https:// URL (got 'ftp')"),
        ("notifications.webhook[0].on[0]",
         "must be one of 'failure', 'quality', 'schema_change', 'success', got 'falure'"),
        ("notifications.webhook[0].timeout_s", "must be above 0 and at most 60 seconds, got 0.0"),
        ("notifications.webhook[0].retries", "must be 0..5, got 9"),
        ("notifications.webhook[0].headers.Content-Type",
         "is set by Rivet and cannot be overridden"),
        ('notifications.webhook[0].headers."bad name"', "is not a valid HTTP header name"),
        ("notifications.slack[0].on", "expected an array of event names, got a string"),
        ("notifications.slack[2].chanel", "unknown key"),
        ("notifications.slack[0]", "specify exactly one of 'url', 'url_env', 'url_file'"),
        ("notifications.slack[1].on",
         "names no event, so this target would never be notified"),
        ("notifications.slack[1].timeout_s",
         "must be above 0 and at most 60 seconds, got 61.0"),
    }
    hints = {path: hint for path, _, hint in problems}
    assert hints["notifications.webhook[0].on[0]"] == "did you mean 'failure'?"
    assert hints["notifications.slack[0].on"] == 'write e.g. on = ["failure"]'
    assert_no_url([redact(repr(p)) for p in problems] + [repr(p) for p in problems],
                  "hooks.slack.com" + PATH)


def test_a_single_table_instead_of_an_array_says_what_to_write() -> None:
    problems = problems_of('[notifications.slack]\nurl_env = "SLACK_WEBHOOK_URL"\n')
    assert problems == [("notifications.slack", "must be an array of tables",
                         "write [[notifications.slack]] (double brackets) once per target")]


def test_an_unset_url_env_is_a_clear_problem_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: Endpoint
) -> None:
    monkeypatch.delenv("RIVET_TEST_SLACK_URL", raising=False)
    config = load('[[notifications.slack]]\nurl_env = "RIVET_TEST_SLACK_URL"\n')
    problems: list[tuple[Any, ...]] = []
    check_notification_references(config, "notifications", lambda *a: problems.append(a),
                                  tmp_path)
    assert problems == [("notifications.slack[0].url_env",
                         "environment variable 'RIVET_TEST_SLACK_URL' is not set")]

    warnings = notify(config, summary(FAILED), config_dir=tmp_path)
    assert warnings == ["notifications.slack[0] ($RIVET_TEST_SLACK_URL): notification not "
                        "sent: environment variable 'RIVET_TEST_SLACK_URL' is not set"]
    assert endpoint.received == []


def test_a_url_env_holding_no_http_url_is_a_problem_that_does_not_quote_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RIVET_TEST_SLACK_URL", f"hooks.slack.com{PATH}")
    config = load('[[notifications.slack]]\nurl_env = "RIVET_TEST_SLACK_URL"\n')
    problems: list[tuple[Any, ...]] = []
    check_notification_references(config, "notifications", lambda *a: problems.append(a),
                                  tmp_path)
    assert problems == [("notifications.slack[0].url_env",
                         "environment variable 'RIVET_TEST_SLACK_URL' does not hold a usable "
                         "URL: the URL must be an http:// or https:// URL")]


def test_an_inline_url_is_a_secret_and_shown_as_scheme_and_host(endpoint: Endpoint) -> None:
    url = endpoint.url()
    config = load(f'[[notifications.webhook]]\nurl = "{url}"\n'
                  f'headers = {{ Authorization = "Bearer s3cr3t-bearer-token" }}\n')
    target, = config.webhook
    assert target.location() == endpoint.location()
    for text in (repr(config), str(config), repr(target), str(target.headers.keys())):
        assert_no_url([text], url)
        assert "s3cr3t-bearer-token" not in text
    # Registered on load: masked wherever it would appear, the path (the token) too.
    assert redact(f"POST {url} failed") == f"POST {MASK} failed"
    assert redact(f"GET {PATH}") == f"GET {MASK}"
    assert redact("header: s3cr3t-bearer-token") == f"header: {MASK}"


# -------------------------------------------------------------------------------- payloads


@pytest.mark.parametrize("event", list(RUNS))
def test_each_event_reaches_both_kinds_of_target_with_its_content(
    event: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    run, fragments = RUNS[event]
    config = load(f"""
        [[notifications.webhook]]
        url = "{endpoint.url("/hook/" + TOKEN)}"
        on = ["{event}"]
        headers = {{ "X-Team" = "data" }}
        [[notifications.slack]]
        url = "{endpoint.url()}"
        on = ["{event}"]
    """)
    assert notify(config, run, config_dir=tmp_path) == []

    hook, slack = endpoint.received
    assert hook.path == "/hook/" + TOKEN
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.headers["User-Agent"] == f"rivet/{__version__}"
    assert hook.headers["X-Team"] == "data"
    assert hook.json() == {"event": [event], "summary": run}

    assert slack.path == PATH
    assert slack.headers["Content-Type"] == "application/json"
    assert slack.headers["X-Team"] is None
    message = slack.json()
    assert set(message) == {"text", "blocks"}
    text = slack_text(message)
    for fragment in fragments:
        assert fragment in text
    assert f"events: {event}" in text
    assert "the second line stays out" not in text


def test_payloads_are_redacted(endpoint: Endpoint, tmp_path: Path) -> None:
    register_secret("hunter2-from-env")
    failed = export("orders", "failed", error="could not connect to "
                    "postgresql://etl:pa55word@db.internal/prod (password hunter2-from-env)")
    config = load(f'[[notifications.webhook]]\nurl = "{endpoint.url("/a")}"\n'
                  f'[[notifications.slack]]\nurl = "{endpoint.url("/b")}"\n')
    assert notify(config, summary(failed), config_dir=tmp_path) == []
    for request in endpoint.received:
        body = request.body.decode()
        assert "pa55word" not in body
        assert "hunter2-from-env" not in body
        assert MASK in body


def test_on_selects_targets_and_their_events(endpoint: Endpoint, tmp_path: Path) -> None:
    config = load(f"""
        [[notifications.webhook]]
        url = "{endpoint.url("/success-only")}"
        on = ["success"]
        [[notifications.webhook]]
        url = "{endpoint.url("/default-failure")}"
        [[notifications.webhook]]
        url = "{endpoint.url("/drift-and-quality")}"
        on = ["quality", "schema_change"]
        [[notifications.slack]]
        url = "{endpoint.url("/slack-quality")}"
        on = ["quality"]
    """)
    run = summary(FAILED, export("users", schema_drift=DRIFT))
    assert notify(config, run, config_dir=tmp_path) == []
    assert [(r.path, r.json().get("event")) for r in endpoint.received] == [
        ("/default-failure", ["failure"]),
        ("/drift-and-quality", ["schema_change"]),
    ]


def test_no_target_and_no_config_send_nothing(endpoint: Endpoint, tmp_path: Path) -> None:
    assert notify(None, summary(FAILED), config_dir=tmp_path) == []
    assert notify(NotificationsConfig(), summary(FAILED), config_dir=tmp_path) == []
    assert endpoint.received == []


def test_url_file_is_read_relative_to_the_config_directory(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    (tmp_path / "slack.url").write_text(endpoint.url() + "\n")
    config = load('[[notifications.slack]]\nurl_file = "slack.url"\n')
    assert notify(config, summary(FAILED), config_dir=tmp_path) == []
    assert [r.path for r in endpoint.received] == [PATH]
    assert redact(endpoint.url()) == MASK


# -------------------------------------------------------------------------------- delivery


def test_server_errors_are_retried_until_delivered(
    endpoint: Endpoint, tmp_path: Path, sleeps: list[float], fake_sleep: Callable[[float], None]
) -> None:
    endpoint.replies.extend([Reply(500), Reply(503)])
    config = load(f'[[notifications.slack]]\nurl = "{endpoint.url()}"\nretries = 2\n')
    assert notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep) == []
    assert len(endpoint.received) == 3
    assert endpoint.received[0].body == endpoint.received[2].body
    assert sleeps == [0.5, 1.0]


def test_retry_after_is_honoured_up_to_the_timeout(
    endpoint: Endpoint, tmp_path: Path, sleeps: list[float], fake_sleep: Callable[[float], None]
) -> None:
    endpoint.replies.extend([Reply(429, headers={"Retry-After": "1"}),
                             Reply(429, headers={"Retry-After": "120"})])
    config = load(f'[[notifications.webhook]]\nurl = "{endpoint.url()}"\n'
                  "retries = 2\ntimeout_s = 2\n")
    assert notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep) == []
    assert len(endpoint.received) == 3
    assert sleeps == [1.0, 2.0]


def test_server_errors_past_the_retries_give_one_warning(
    endpoint: Endpoint, tmp_path: Path, sleeps: list[float], fake_sleep: Callable[[float], None]
) -> None:
    endpoint.replies.extend([Reply(502, b"bad gateway")] * 3)
    config = load(f'[[notifications.webhook]]\nurl = "{endpoint.url()}"\nretries = 1\n')
    warnings = notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep)
    assert warnings == [f"notifications.webhook[0] ({endpoint.location()}): notification not "
                        "sent: HTTP 502 Bad Gateway: bad gateway (2 attempts)"]
    assert len(endpoint.received) == 2


def test_a_client_error_is_not_retried(
    endpoint: Endpoint, tmp_path: Path, sleeps: list[float], fake_sleep: Callable[[float], None]
) -> None:
    endpoint.replies.append(Reply(400, b"invalid_payload"))
    config = load(f'[[notifications.slack]]\nurl = "{endpoint.url()}"\nretries = 3\n')
    warnings = notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep)
    assert warnings == [f"notifications.slack[0] ({endpoint.location()}): notification not "
                        "sent: HTTP 400 Bad Request: invalid_payload"]
    assert len(endpoint.received) == 1
    assert sleeps == []
    assert_no_url(warnings, endpoint.url())


def test_a_redirect_is_not_followed(
    endpoint: Endpoint, tmp_path: Path, sleeps: list[float], fake_sleep: Callable[[float], None]
) -> None:
    endpoint.replies.append(Reply(302, b"", headers={"Location": endpoint.url("/elsewhere")}))
    config = load(f'[[notifications.webhook]]\nurl = "{endpoint.url()}"\n'
                  'headers = { Authorization = "Bearer s3cr3t-bearer-token" }\n')
    warnings = notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep)
    assert len(warnings) == 1
    assert "HTTP 302 Found" in warnings[0]
    assert [r.path for r in endpoint.received] == [PATH]


def test_a_timeout_gives_a_warning_quickly(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.replies.extend([Reply(delay=10), Reply(delay=10)])
    config = load(f'[[notifications.slack]]\nurl = "{endpoint.url()}"\n'
                  "timeout_s = 0.3\nretries = 1\n")
    started = time.monotonic()
    warnings = notify(config, summary(FAILED), config_dir=tmp_path)
    assert time.monotonic() - started < 3
    assert warnings == [f"notifications.slack[0] ({endpoint.location()}): notification not "
                        "sent: timed out after 0.3 s (2 attempts)"]


def test_a_refused_connection_gives_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: list[float],
    fake_sleep: Callable[[float], None]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}{PATH}"
        monkeypatch.setenv("RIVET_TEST_HOOK_URL", url)
        config = load('[[notifications.webhook]]\nurl_env = "RIVET_TEST_HOOK_URL"\n'
                      "retries = 1\n")
        warnings = notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep)
    location = url.replace(PATH, "/…")
    assert warnings == [f"notifications.webhook[0] ($RIVET_TEST_HOOK_URL): notification not "
                        f"sent: {location}: cannot connect: [Errno 111] Connection refused "
                        "(2 attempts)"]
    assert sleeps == [0.5]
    assert_no_url(warnings, url)


def test_a_non_loopback_host_is_never_reached(
    tmp_path: Path, blocked: list[Any], fake_sleep: Callable[[float], None]
) -> None:
    url = f"http://192.0.2.1{PATH}"  # TEST-NET-1
    config = load(f'[[notifications.slack]]\nurl = "{url}"\nretries = 0\n')
    warnings = notify(config, summary(FAILED), config_dir=tmp_path, sleep=fake_sleep)
    assert blocked == [("192.0.2.1", 80)]
    assert warnings == ["notifications.slack[0] (http://192.0.2.1/…): notification not sent: "
                        "cannot connect: [Errno 111] non-loopback connection blocked by the "
                        "test (1 attempt)"]
    assert_no_url(warnings, url)


def test_a_malformed_summary_still_notifies(endpoint: Endpoint, tmp_path: Path) -> None:
    run = {"status": "failed", "exports": [{"export": "odd", "status": "failed",
                                            "rows": "many", "files": None,
                                            "error": "", "quality": "n/a",
                                            "schema_drift": ["x"]},
                                           {"export": "odder", "quality": 5}, "not a dict"],
           "started": time}
    config = load(f'[[notifications.webhook]]\nurl = "{endpoint.url("/a")}"\n'
                  f'[[notifications.slack]]\nurl = "{endpoint.url("/b")}"\n')
    assert notify(config, run, config_dir=tmp_path) == []
    hook, slack = endpoint.received
    assert hook.json()["event"] == ["failure"]
    assert hook.json()["summary"]["started"].startswith("<module 'time'")
    assert ":x: *odd* failed · 0 rows · 0 files" in slack_text(slack.json())
