"""A small Google Cloud Storage XML-API server for the test suite (test infrastructure only).

No installable GCS emulator accepts obstore's writes (fake-gcs-server 1.54 has no XML-API
uploads, gcp-storage-emulator sends no ETag), so the suite runs this one: standard library
only, its own process, faithful to what object_store 0.14 (inside obstore) relies on:

- ``PUT/GET/HEAD/DELETE /{bucket}/{object}`` with ``ETag``, ``Last-Modified``,
  ``x-goog-generation``; ``Range`` reads; ``x-goog-meta-*`` and content headers kept;
- ``x-goog-if-generation-match`` preconditions (0 = must not exist), ``If-None-Match`` /
  ``If-Match`` on reads; ``x-goog-copy-source`` copies;
- ``GET /{bucket}?list-type=2`` with ``prefix``, ``delimiter``, ``start-after``,
  ``max-keys`` and continuation tokens (1,000 keys a page);
- multipart uploads: ``POST ?uploads``, ``PUT ?partNumber&uploadId``, ``POST ?uploadId``
  (complete; every part but the last at least ``--min-part-size``, 5 MiB as in GCS),
  ``DELETE ?uploadId`` (abort), and ``GET /{bucket}?uploads`` (ListMultipartUploads), which
  tests use to prove no upload is left open.

Test-only controls, under ``/_test/``: ``POST /_test/fault?status=503&count=N[&method=PUT]
[&bucket=B]`` makes the next N matching requests fail with that status (for retry and
error tests), ``DELETE /_test/fault`` disarms every fault, and ``GET /_test/stats`` returns
request counts and the number of open uploads as JSON.

Object bytes live in files under a temporary directory (removed on exit); metadata in
memory. Authorization headers are accepted and ignored; MD5/CRC32C are not checked.

Run: ``python gcs_xml_server.py --port 0 [--bucket B]... [--min-part-size N]``; prints
``LISTENING <port>`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

MIB = 1 << 20
PAGE = 1000


class Obj:
    """One stored object: data file path plus the metadata GCS returns."""

    def __init__(self, path: str, size: int, etag: str, generation: int,
                 headers: dict[str, str]) -> None:
        self.path = path
        self.size = size
        self.etag = etag
        self.generation = generation
        self.headers = headers
        self.mtime = time.time()


class Upload:
    def __init__(self, bucket: str, key: str, headers: dict[str, str]) -> None:
        self.id = uuid.uuid4().hex
        self.bucket = bucket
        self.key = key
        self.headers = headers
        self.parts: dict[int, tuple[str, int, str]] = {}  # number -> (path, size, etag)
        self.started = time.time()


class State:
    def __init__(self, root: str, min_part_size: int) -> None:
        self.root = root
        self.min_part_size = min_part_size
        self.lock = threading.RLock()
        self.buckets: dict[str, dict[str, Obj]] = {}
        self.uploads: dict[str, Upload] = {}
        self.generation = int(time.time() * 1_000_000)
        self.faults: list[dict[str, Any]] = []
        self.stats: dict[str, int] = {}

    def next_generation(self) -> int:
        with self.lock:
            self.generation += 1
            return self.generation

    def new_path(self) -> str:
        return os.path.join(self.root, uuid.uuid4().hex)


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def iso_date(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def error_xml(code: str, message: str) -> bytes:
    return (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error>").encode()


KEPT_HEADERS = ("content-type", "content-encoding", "content-disposition", "content-language",
                "cache-control")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("GCS_XML_SERVER_LOG"):
            super().log_message(format, *args)

    # ------------------------------------------------------------------ plumbing

    @property
    def state(self) -> State:
        return self.server.state

    def _parse(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path.lstrip("/")
        bucket, _, key = path.partition("/")
        return unquote(bucket), unquote(key), query

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _body_to_file(self, path: str) -> tuple[int, str]:
        """Stream the request body into ``path``; returns (size, md5 hex)."""
        length = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.md5()
        remaining = length
        with open(path, "wb") as out:
            while remaining:
                chunk = self.rfile.read(min(remaining, MIB))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
        return length - remaining, digest.hexdigest()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/xml") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body or status not in (204, 304):
            self.send_header("Content-Type", (headers or {}).get("Content-Type", content_type))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, error_xml(code, message))

    def _obj_headers(self, obj: Obj) -> dict[str, str]:
        headers = {"ETag": obj.etag, "Last-Modified": http_date(obj.mtime),
                   "x-goog-generation": str(obj.generation),
                   "x-goog-stored-content-length": str(obj.size)}
        headers.update(obj.headers)
        headers.setdefault("Content-Type", "application/octet-stream")
        return headers

    def _fault(self) -> bool:
        """Serve an injected failure if one is armed for this request."""
        with self.state.lock:
            for fault in self.state.faults:
                if fault["method"] in ("", self.command) and fault["count"] > 0 and \
                        unquote(urlsplit(self.path).path).startswith(f"/{fault['bucket']}"):
                    fault["count"] -= 1
                    status = fault["status"]
                    break
            else:
                return False
            self.state.faults = [f for f in self.state.faults if f["count"] > 0]
        if self.command in ("PUT", "POST"):
            self._body()  # keep the connection usable
        self._error(status, "InjectedFault", f"injected {status}")
        return True

    def _dispatch(self) -> None:
        with self.state.lock:
            self.state.stats[self.command] = self.state.stats.get(self.command, 0) + 1
        if self.path.startswith("/_test/"):
            self._control()
            return
        if self._fault():
            return
        bucket, key, query = self._parse()
        method = self.command
        try:
            if not bucket:
                if method == "GET":
                    self._list_buckets()
                else:
                    self._error(405, "MethodNotAllowed", "no bucket")
                return
            if not key:
                self._bucket_op(method, bucket, query)
                return
            if bucket not in self.state.buckets:
                self._error(404, "NoSuchBucket", bucket)
                return
            self._object_op(method, bucket, key, query)
        except BrokenPipeError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch

    # ------------------------------------------------------------------ test controls

    def _control(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/_test/fault" and self.command == "POST":
            self._body()
            with self.state.lock:
                self.state.faults.append({"status": int(query.get("status", "503")),
                                          "count": int(query.get("count", "1")),
                                          "method": query.get("method", "").upper(),
                                          "bucket": query.get("bucket", "")})
            self._send(204)
        elif parts.path == "/_test/fault" and self.command == "DELETE":
            with self.state.lock:
                self.state.faults.clear()
            self._send(204)
        elif parts.path == "/_test/stats":
            with self.state.lock:
                body = json.dumps({"requests": self.state.stats,
                                   "open_uploads": len(self.state.uploads)}).encode()
            self._send(200, body, content_type="application/json")
        else:
            self._error(404, "NotFound", parts.path)

    # ------------------------------------------------------------------ buckets

    def _list_buckets(self) -> None:
        with self.state.lock:
            names = sorted(self.state.buckets)
        items = "".join(f"<Bucket><Name>{escape(n)}</Name></Bucket>" for n in names)
        self._send(200, f"<?xml version='1.0' encoding='UTF-8'?><ListAllMyBucketsResult>"
                        f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>".encode())

    def _bucket_op(self, method: str, bucket: str, query: dict[str, list[str]]) -> None:
        state = self.state
        if method == "PUT":
            self._body()
            with state.lock:
                if bucket in state.buckets:
                    self._error(409, "BucketAlreadyOwnedByYou", bucket)
                    return
                state.buckets[bucket] = {}
            self._send(200)
            return
        if bucket not in state.buckets:
            self._error(404, "NoSuchBucket", bucket)
            return
        if method == "DELETE":
            with state.lock:
                if state.buckets[bucket]:
                    self._error(409, "BucketNotEmpty", bucket)
                    return
                del state.buckets[bucket]
            self._send(204)
        elif method in ("GET", "HEAD") and "uploads" in query:
            self._list_uploads(bucket, query)
        elif method in ("GET", "HEAD"):
            self._list_objects(bucket, query)
        else:
            self._error(405, "MethodNotAllowed", method)

    def _list_objects(self, bucket: str, query: dict[str, list[str]]) -> None:
        def arg(name: str) -> str:
            return query.get(name, [""])[-1]

        prefix, delimiter = arg("prefix"), arg("delimiter")
        token = arg("continuation-token")
        start_after = unquote(token) if token else arg("start-after")
        max_keys = min(int(arg("max-keys") or PAGE), PAGE)
        with self.state.lock:
            objects = self.state.buckets[bucket]
            names = sorted(k for k in objects if k.startswith(prefix) and k > start_after)
            contents: list[str] = []
            prefixes: set[str] = set()
            last = ""
            truncated = False
            for name in names:
                if delimiter:
                    cut = name.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = name[: cut + len(delimiter)]
                        if common in prefixes:
                            last = name
                            continue
                        if len(contents) + len(prefixes) >= max_keys:
                            truncated = True
                            break
                        prefixes.add(common)
                        last = name
                        continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                contents.append(name)
                last = name
            rows = []
            for name in contents:
                obj = objects[name]
                rows.append(f"<Contents><Key>{escape(name)}</Key>"
                            f"<LastModified>{iso_date(obj.mtime)}</LastModified>"
                            f"<ETag>{escape(obj.etag)}</ETag><Size>{obj.size}</Size>"
                            f"<Generation>{obj.generation}</Generation></Contents>")
        common_xml = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>"
                             for p in sorted(prefixes))
        next_token = (f"<NextContinuationToken>{escape(quote(last, safe=''))}"
                      f"</NextContinuationToken>") if truncated else ""
        body = (f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>"
                f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
                f"<MaxKeys>{max_keys}</MaxKeys>"
                f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_token}"
                f"{''.join(rows)}{common_xml}</ListBucketResult>")
        self._send(200, body.encode())

    def _list_uploads(self, bucket: str, query: dict[str, list[str]]) -> None:
        prefix = query.get("prefix", [""])[-1]
        with self.state.lock:
            uploads = sorted((u for u in self.state.uploads.values()
                              if u.bucket == bucket and u.key.startswith(prefix)),
                             key=lambda u: (u.key, u.started))
            rows = "".join(f"<Upload><Key>{escape(u.key)}</Key><UploadId>{u.id}</UploadId>"
                           f"<Initiated>{iso_date(u.started)}</Initiated></Upload>"
                           for u in uploads)
        body = (f"<?xml version='1.0' encoding='UTF-8'?><ListMultipartUploadsResult>"
                f"<Bucket>{escape(bucket)}</Bucket><Prefix>{escape(prefix)}</Prefix>"
                f"<IsTruncated>false</IsTruncated>{rows}</ListMultipartUploadsResult>")
        self._send(200, body.encode())

    # ------------------------------------------------------------------ objects

    def _precondition(self, bucket: str, key: str) -> bool:
        """Check ``x-goog-if-generation-match``; sends 412 and returns False on mismatch."""
        wanted = self.headers.get("x-goog-if-generation-match")
        if wanted is None:
            return True
        current = self.state.buckets[bucket].get(key)
        generation = current.generation if current else 0
        if int(wanted) != generation:
            self._error(412, "PreconditionFailed",
                        f"generation {generation} does not match {wanted}")
            return False
        return True

    def _kept_headers(self) -> dict[str, str]:
        kept = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in KEPT_HEADERS or lower.startswith("x-goog-meta-"):
                kept[lower if lower.startswith("x-goog-meta-") else name.title()] = value
        return kept

    def _store(self, bucket: str, key: str, path: str, size: int, etag: str,
               headers: dict[str, str]) -> Obj | None:
        """Install a new object version under the lock, honouring the precondition."""
        with self.state.lock:
            if bucket not in self.state.buckets:
                os.unlink(path)
                self._error(404, "NoSuchBucket", bucket)
                return None
            if not self._precondition(bucket, key):
                os.unlink(path)
                return None
            old = self.state.buckets[bucket].get(key)
            obj = Obj(path, size, etag, self.state.next_generation(), headers)
            self.state.buckets[bucket][key] = obj
        if old is not None:
            _unlink(old.path)
        return obj

    def _object_op(self, method: str, bucket: str, key: str,
                   query: dict[str, list[str]]) -> None:
        if "uploads" in query and method == "POST":
            self._body()
            upload = Upload(bucket, key, self._kept_headers())
            with self.state.lock:
                self.state.uploads[upload.id] = upload
            self._send(200, (f"<?xml version='1.0' encoding='UTF-8'?>"
                             f"<InitiateMultipartUploadResult><Bucket>{escape(bucket)}</Bucket>"
                             f"<Key>{escape(key)}</Key><UploadId>{upload.id}</UploadId>"
                             f"</InitiateMultipartUploadResult>").encode())
            return
        if "uploadId" in query:
            self._upload_op(method, bucket, key, query)
            return
        if method == "PUT":
            source = self.headers.get("x-goog-copy-source")
            if source is not None:
                self._copy(bucket, key, source)
                return
            path = self.state.new_path()
            size, md5 = self._body_to_file(path)
            obj = self._store(bucket, key, path, size, f'"{md5}"', self._kept_headers())
            if obj is not None:
                self._send(200, headers={"ETag": obj.etag,
                                         "x-goog-generation": str(obj.generation)})
        elif method in ("GET", "HEAD"):
            self._get(bucket, key, query)
        elif method == "DELETE":
            with self.state.lock:
                obj = self.state.buckets[bucket].pop(key, None)
            if obj is None:
                self._error(404, "NoSuchKey", key)
                return
            _unlink(obj.path)
            self._send(204)
        else:
            self._error(405, "MethodNotAllowed", method)

    def _copy(self, bucket: str, key: str, source: str) -> None:
        self._body()
        src_bucket, _, src_key = unquote(source).lstrip("/").partition("/")
        with self.state.lock:
            src = self.state.buckets.get(src_bucket, {}).get(src_key)
            if src is None:
                self._error(404, "NoSuchKey", source)
                return
            path = self.state.new_path()
            shutil.copyfile(src.path, path)
            size, etag, headers = src.size, src.etag, dict(src.headers)
        obj = self._store(bucket, key, path, size, etag, headers)
        if obj is not None:
            self._send(200, (f"<?xml version='1.0' encoding='UTF-8'?><CopyObjectResult>"
                             f"<ETag>{escape(obj.etag)}</ETag></CopyObjectResult>").encode(),
                       headers={"ETag": obj.etag, "x-goog-generation": str(obj.generation)})

    def _get(self, bucket: str, key: str, query: dict[str, list[str]]) -> None:
        with self.state.lock:
            obj = self.state.buckets[bucket].get(key)
        wanted_generation = query.get("generation", [None])[-1]
        if obj is None or (wanted_generation is not None
                           and int(wanted_generation) != obj.generation):
            self._error(404, "NoSuchKey", key)
            return
        headers = self._obj_headers(obj)
        if_none = self.headers.get("If-None-Match")
        if if_none is not None and if_none in (obj.etag, "*"):
            self._send(304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
            return
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match not in (obj.etag, "*"):
            self._error(412, "PreconditionFailed", "etag mismatch")
            return
        start, end, status = 0, obj.size - 1, 200
        ranged = self.headers.get("Range")
        if ranged and ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            if first == "":
                start = max(obj.size - int(last), 0)
            else:
                start = int(first)
                end = min(int(last), obj.size - 1) if last else obj.size - 1
            if start >= obj.size and obj.size > 0:
                self._send(416, error_xml("InvalidRange", ranged),
                           headers={"Content-Range": f"bytes */{obj.size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        length = max(end - start + 1, 0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        try:
            with open(obj.path, "rb") as data:
                data.seek(start)
                remaining = length
                while remaining:
                    chunk = data.read(min(remaining, MIB))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        except FileNotFoundError:  # replaced while being read: the client sees a short body
            self.close_connection = True

    # ------------------------------------------------------------------ multipart

    def _upload_op(self, method: str, bucket: str, key: str,
                   query: dict[str, list[str]]) -> None:
        upload_id = query["uploadId"][-1]
        with self.state.lock:
            upload = self.state.uploads.get(upload_id)
        if upload is None or upload.key != key or upload.bucket != bucket:
            if method in ("PUT", "POST"):
                self._body()
            self._error(404, "NoSuchUpload", upload_id)
            return
        if method == "PUT" and "partNumber" in query:
            number = int(query["partNumber"][-1])
            path = self.state.new_path()
            size, md5 = self._body_to_file(path)
            etag = f'"{md5}"'
            with self.state.lock:
                if upload_id not in self.state.uploads:
                    os.unlink(path)
                    self._error(404, "NoSuchUpload", upload_id)
                    return
                old = upload.parts.get(number)
                upload.parts[number] = (path, size, etag)
            if old is not None:
                _unlink(old[0])
            self._send(200, headers={"ETag": etag})
        elif method == "POST":
            self._complete(upload, self._body())
        elif method == "DELETE":
            with self.state.lock:
                self.state.uploads.pop(upload_id, None)
            for path, _, _ in upload.parts.values():
                _unlink(path)
            self._send(204)
        else:
            self._error(405, "MethodNotAllowed", method)

    def _complete(self, upload: Upload, body: bytes) -> None:
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            self._error(400, "MalformedXML", str(exc))
            return
        wanted: list[tuple[int, str]] = []
        for part in root.iter():
            if part.tag.rsplit("}", 1)[-1] != "Part":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in part}
            wanted.append((int(fields["PartNumber"]), fields.get("ETag", "")))
        with self.state.lock:
            chosen = []
            for index, (number, etag) in enumerate(wanted):
                got = upload.parts.get(number)
                if got is None or (etag and etag.strip('"') != got[2].strip('"')):
                    self._error(400, "InvalidPart", f"part {number}")
                    return
                if index < len(wanted) - 1 and got[1] < self.state.min_part_size:
                    self._error(400, "EntityTooSmall",
                                f"part {number} is {got[1]} bytes, below the minimum "
                                f"{self.state.min_part_size}")
                    return
                chosen.append(got)
        path = self.state.new_path()
        digest = hashlib.md5()
        size = 0
        with open(path, "wb") as out:
            for part_path, part_size, part_etag in chosen:
                digest.update(bytes.fromhex(part_etag.strip('"')))
                with open(part_path, "rb") as data:
                    shutil.copyfileobj(data, out, MIB)
                size += part_size
        etag = f'"{digest.hexdigest()}-{len(chosen)}"'
        with self.state.lock:
            if self.state.uploads.pop(upload.id, None) is None:  # aborted meanwhile
                _unlink(path)
                self._error(404, "NoSuchUpload", upload.id)
                return
        obj = self._store(upload.bucket, upload.key, path, size, etag, upload.headers)
        for part_path, _, _ in upload.parts.values():
            _unlink(part_path)
        if obj is None:
            return
        self._send(200, (f"<?xml version='1.0' encoding='UTF-8'?>"
                         f"<CompleteMultipartUploadResult><Bucket>{escape(upload.bucket)}"
                         f"</Bucket><Key>{escape(upload.key)}</Key><ETag>{escape(etag)}</ETag>"
                         f"</CompleteMultipartUploadResult>").encode(),
                   headers={"ETag": etag, "x-goog-generation": str(obj.generation)})


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--min-part-size", type=int, default=5 * MIB)
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="gcs-xml-", dir=args.data_dir)
    server = Server((args.host, args.port), Handler)
    server.state = State(root, args.min_part_size)
    for bucket in args.bucket:
        server.state.buckets[bucket] = {}

    def stop(*_: object) -> None:
        # shutdown() waits for serve_forever, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
