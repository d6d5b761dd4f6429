"""Test infrastructure: object-store servers run as separate processes on 127.0.0.1.

Not product code. ``moto`` serves S3, :mod:`gcs_xml_server` serves GCS's XML API; the
helpers here start them, create buckets with plain HTTP, and read objects back without
obstore (the conformance kit's independent back door). Nothing here reaches a host other
than 127.0.0.1.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
GCS_SERVER = HERE / "gcs_xml_server.py"
MOTO_AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
             "SignedHeaders=host, Signature=0")
CLOUD_ENV = re.compile(r"^(AWS_|GOOGLE_|GCS_|GCLOUD_|CLOUDSDK_|BOTO_)")


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any cloud credentials or endpoints, so nothing
    can fall back to a real provider or instance metadata."""
    env = {k: v for k, v in os.environ.items() if not CLOUD_ENV.match(k)}
    env.update(extra or {})
    return env


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One unsigned request to a loopback test server; returns (status, body)."""
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if http("GET", url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in time")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port; yields its base URL."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=scrubbed_env(),
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", log_path.read_text())
            if match:
                port = int(match.group(1))
            elif process.poll() is not None:
                raise RuntimeError(f"moto exited: {log_path.read_text()}")
            else:
                time.sleep(0.05)
        if port is None:
            raise RuntimeError(f"moto did not report a port: {log_path.read_text()}")
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/moto-api/", process, deadline)
        yield url
    finally:
        _stop(process)


@contextmanager
def gcs_server(data_dir: Path | None = None) -> Iterator[str]:
    """The suite's GCS XML-API server on a free loopback port; yields its base URL."""
    command = [sys.executable, str(GCS_SERVER), "--port", "0"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=scrubbed_env())
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"GCS server did not start: {line!r}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        _wait_ready(f"{url}/", process, time.monotonic() + 30)
        yield url
    finally:
        _stop(process)


def new_bucket(endpoint: str) -> str:
    """Create a fresh bucket with an unsigned PUT (both servers accept it)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    status, body = http("PUT", f"{endpoint}/{name}")
    assert status == 200, (status, body)
    return name


def gcs_service_account(endpoint: str, directory: Path) -> Path:
    """A service-account file that points obstore at the test server and turns OAuth off."""
    path = directory / "gcs-sa.json"
    path.write_text(json.dumps({"gcs_base_url": endpoint, "disable_oauth": True,
                                "client_email": "", "private_key": "",
                                "private_key_id": ""}))
    return path


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class BucketReader:
    """Reads a test bucket over plain HTTP, without obstore: the independent back door.

    Both moto and the GCS server answer unsigned list-type=2 listings, object GETs and
    ``?uploads`` (ListMultipartUploads).
    """

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint = endpoint
        self.bucket = bucket

    def _get(self, url: str) -> tuple[int, bytes]:
        # moto denies anonymous reads of private objects but does not verify signatures:
        # an Authorization header naming the test key makes the request the owner's.
        return http("GET", url, headers={"Authorization": MOTO_AUTH})

    def list(self, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, body = self._get(f"{self.endpoint}/{self.bucket}?"
                                     f"{urllib.parse.urlencode(query)}")
            assert status == 200, (status, body)
            root = ET.fromstring(body)
            token = None
            for element in root:
                tag = _local(element.tag)
                if tag == "Contents":
                    fields = {_local(c.tag): c.text or "" for c in element}
                    found[fields["Key"]] = int(fields["Size"])
                elif tag == "NextContinuationToken":
                    token = element.text
            if not token:
                return found

    def read(self, key: str) -> bytes:
        status, body = self._get(f"{self.endpoint}/{self.bucket}/{urllib.parse.quote(key)}")
        assert status == 200, (status, key)
        return body

    def open_uploads(self, prefix: str = "") -> builtins.list[str]:
        """Keys with an incomplete multipart upload."""
        query = urllib.parse.urlencode({"prefix": prefix})
        status, body = self._get(f"{self.endpoint}/{self.bucket}?uploads&{query}")
        assert status == 200, (status, body)
        root = ET.fromstring(body)
        keys = []
        for element in root.iter():
            if _local(element.tag) == "Upload":
                fields = {_local(c.tag): c.text or "" for c in element}
                keys.append(fields["Key"])
        return keys
