"""Azurite, Microsoft's Azure Storage emulator, for the test suite (test infrastructure only).

Azurite is the npm package ``azurite``, installed into a cache directory outside the
checkout (``RIVET_TEST_AZURITE_DIR``, default ``~/.cache/rivet-tests/azurite``; .ci/run
installs it there). Its blob service runs as its own process on a free 127.0.0.1 port,
under the guard of :mod:`servers.tls` so it cannot outlive the test run; its data lives in
a temporary directory.

Requests are signed here with the emulator's well-known development account (Shared Key,
standard library only), never through obstore: the back door (:class:`ContainerReader`) and
the test-only setup (containers, SAS tokens) must not share code with the destination under
test. Nothing here reaches a host other than 127.0.0.1.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import hmac
import os
import re
import shutil
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from servers import http
from servers.clouds import Cloud
from servers.tls import _guarded, _stop, free_port

AZURITE_VERSION = "3.37.0"
ACCOUNT = "devstoreaccount1"
# Azurite's development account key: public, printed in Microsoft's Azurite documentation.
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
API_VERSION = "2021-08-06"
AZURE_ENV = re.compile(r"^(AZURE_|AZURITE_)")
"""Variables obstore's Azure client (or Azurite) reads from the environment."""
AZURE_KEY_ENV = {"RIVET_T_AZURE_KEY": ACCOUNT_KEY}
"""The environment a test exports for ``account_key_env = "RIVET_T_AZURE_KEY"``."""


def install_dir() -> Path:
    return Path(os.environ.get("RIVET_TEST_AZURITE_DIR")
                or "~/.cache/rivet-tests/azurite").expanduser()


def azurite_command() -> list[str] | None:
    """How to start ``azurite-blob``, or None when Azurite or Node.js is missing."""
    if shutil.which("node") is None:
        return None
    local = install_dir() / "node_modules" / ".bin" / "azurite-blob"
    if local.is_file():
        return [str(local)]
    found = shutil.which("azurite-blob")
    return [found] if found else None


def missing_reason() -> str:
    return (f"Azurite is not installed: `npm install --prefix {install_dir()} "
            f"azurite@{AZURITE_VERSION}` (.ci/run does; needs Node.js and npm)")


@contextmanager
def azurite_server(location: Path) -> Iterator[str]:
    """Azurite's blob service on a free loopback port; yields the account URL
    ``http://127.0.0.1:PORT/devstoreaccount1`` (what ``endpoint`` names)."""
    command = azurite_command()
    if command is None:
        raise RuntimeError(missing_reason())
    log = location / "azurite.log"
    for attempt in range(3):
        port = free_port()
        # No --blobPort 0: Azurite would not say which port it took.
        process = _guarded([*command, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                            "--location", str(location / f"data-{attempt}"),
                            "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl",
                            "--disableTelemetry"],
                           log=log)
        try:
            if _wait_listening(process, log, port):
                break
        except BaseException:
            _stop(process)
            raise
        _stop(process)  # the port was taken between the probe and the start
    else:
        raise RuntimeError(f"Azurite did not start:\n{log.read_text(errors='replace')}")
    try:
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        _stop(process)


def _wait_listening(process, log: Path, port: int) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if f"successfully listens on http://127.0.0.1:{port}" in text:
            return True
        if process.poll() is not None:
            if "EADDRINUSE" in text:
                return False
            raise RuntimeError(f"Azurite exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"Azurite did not listen within 60 s:\n{log.read_text()[-3000:]}")


# ------------------------------------------------------------------------ signed requests


def signed(method: str, url: str, body: bytes = b"",
           headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request signed with the development account's Shared Key.
    ``url`` is the full URL (account URL, container, blob, query)."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION,
               **(headers or {})}
    if method in ("PUT", "POST"):
        # urllib would add a form content type of its own, outside the signature.
        headers.setdefault("Content-Type", "application/octet-stream")
    parts = urllib.parse.urlsplit(url)
    canonical_headers = "".join(
        f"{name}:{value}\n" for name, value in sorted(
            (k.lower(), v.strip()) for k, v in headers.items()
            if k.lower().startswith("x-ms-")))
    resource = f"/{ACCOUNT}{parts.path}"
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    for name in sorted(query, key=str.lower):
        resource += f"\n{name.lower()}:{','.join(sorted(query[name]))}"
    string_to_sign = "\n".join([
        method, headers.get("Content-Encoding", ""), headers.get("Content-Language", ""),
        str(len(body)) if body else "", headers.get("Content-MD5", ""),
        headers.get("Content-Type", ""), "", "", "", "", "", headers.get("Range", ""),
    ]) + "\n" + canonical_headers + resource
    signature = base64.b64encode(hmac.new(base64.b64decode(ACCOUNT_KEY),
                                          string_to_sign.encode(), hashlib.sha256).digest())
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{signature.decode()}"
    return http(method, url, body if method in ("PUT", "POST") else None, headers)


def new_container(account_url: str) -> str:
    """A fresh, empty container (Azure creates none on first write)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    status, body = signed("PUT", f"{account_url}/{name}?restype=container")
    assert status == 201, (status, body)
    return name


def container_sas(container: str, permissions: str = "racwdl", *,
                  valid_for: dt.timedelta = dt.timedelta(hours=2)) -> str:
    """A service SAS for one container (``sv=…&sr=c&sig=…``, no leading ``?``). Not an
    account SAS: Azurite 3.37 answers 500 to a blob batch (obstore's delete) signed with one."""
    begin = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    fields = {"sv": "2019-12-12", "sr": "c", "sp": permissions,
              "st": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "se": (begin + valid_for).strftime("%Y-%m-%dT%H:%M:%SZ"), "spr": "https,http"}
    to_sign = "\n".join([fields["sp"], fields["st"], fields["se"],
                         f"/blob/{ACCOUNT}/{container}", "", "", fields["spr"], fields["sv"],
                         fields["sr"], "", "", "", "", "", ""])
    fields["sig"] = base64.b64encode(hmac.new(base64.b64decode(ACCOUNT_KEY),
                                              to_sign.encode(), hashlib.sha256).digest()
                                     ).decode()
    return urllib.parse.urlencode(fields)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class ContainerReader:
    """Reads a container over signed plain HTTP, without obstore: the independent back door.
    Same methods as :class:`servers.BucketReader`."""

    def __init__(self, account_url: str, container: str) -> None:
        self.account_url = account_url
        self.container = container

    def _blobs(self, prefix: str, include: str | None = None) -> dict[str, int]:
        found: dict[str, int] = {}
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if include:
                query["include"] = include
            if marker:
                query["marker"] = marker
            status, body = signed("GET", f"{self.account_url}/{self.container}?"
                                         f"{urllib.parse.urlencode(query)}")
            assert status == 200, (status, body)
            root = ET.fromstring(body)
            for blob in root.iter("Blob"):
                name = blob.findtext("Name") or ""
                found[name] = int(blob.findtext("Properties/Content-Length") or 0)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return found

    def list(self, prefix: str = "") -> dict[str, int]:
        """Committed blobs (what any reader sees) and their sizes."""
        return self._blobs(prefix)

    def read(self, key: str) -> bytes:
        status, body = signed("GET", self._url(key))
        assert status == 200, (status, key, body[:300])
        return body

    def open_uploads(self, prefix: str = "") -> builtins.list[str]:
        """Blobs holding staged blocks that no Put Block List committed: Azure's counterpart
        of an incomplete multipart upload. Invisible to readers; Azure discards them when
        the name is next committed, or after a week."""
        staged = []
        for name in self._blobs(prefix, include="uncommittedblobs"):
            status, body = signed("GET", self._url(name) +
                                  "?comp=blocklist&blocklisttype=uncommitted")
            assert status == 200, (status, name, body[:300])
            if ET.fromstring(body).find("UncommittedBlocks/Block") is not None:
                staged.append(name)
        return staged

    def _url(self, key: str) -> str:
        return f"{self.account_url}/{self.container}/{urllib.parse.quote(key)}"


@dataclass
class AzureCloud(Cloud):
    """An Azurite container as a destination under test. ``endpoint`` is the account URL;
    ``bucket`` the container."""

    env: dict[str, str] = field(default_factory=lambda: dict(AZURE_KEY_ENV))

    @property
    def reader(self) -> ContainerReader:  # type: ignore[override]
        return ContainerReader(self.endpoint, self.bucket)


def azure_destination(account_url: str, container: str) -> str:
    """``[exports.destination]`` lines (without ``prefix``) for a container in Azurite,
    with the account key from ``RIVET_T_AZURE_KEY``."""
    return (f'type = "azure"\ncontainer = "{container}"\naccount_name = "{ACCOUNT}"\n'
            f'endpoint = "{account_url}"\nallow_http = true\npart_size = "5MB"\n'
            'account_key_env = "RIVET_T_AZURE_KEY"')
