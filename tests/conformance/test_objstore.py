"""The conformance kit against the ``s3`` (moto server) and ``gcs`` (the suite's XML-API
server) destinations. The back door reads the buckets over plain HTTP, never obstore.

Payloads are 12 MiB with 5 MiB parts, so every write is a real multipart upload (three
parts, the last one short) and every abort discards uploaded parts.
"""

from __future__ import annotations

import pytest
from servers import BucketReader

from rivet_core.plugins import build_registry
from rivet_core.testing import DestinationTests

PREFIX = "sandbox/{export}"


class PrefixedReader:
    """A :class:`BucketReader` seen from the destination's location (``sandbox/kit``)."""

    def __init__(self, reader: BucketReader, prefix: str) -> None:
        self.reader = reader
        self.prefix = prefix

    def list(self) -> list[tuple[str, int]]:
        # A bucket listing holds one entry per key (no versioning here), so the reader's
        # mapping loses nothing.
        return [(key[len(self.prefix):], size)
                for key, size in self.reader.list(self.prefix).items()]

    def read(self, name: str) -> bytes:
        return self.reader.read(self.prefix + name)

    def leftovers(self) -> list[str]:
        return self.reader.open_uploads()


class ObjectStoreKit(DestinationTests):
    @pytest.fixture
    def payload_size(self):
        return 12 << 20

    @pytest.fixture
    def backdoor(self, endpoint, bucket):
        return PrefixedReader(BucketReader(endpoint, bucket), "sandbox/kit/")


class TestS3Destination(ObjectStoreKit):
    @pytest.fixture
    def destination_spec(self):
        return build_registry().destinations["s3"].spec

    @pytest.fixture
    def endpoint(self, moto_endpoint):
        return moto_endpoint

    @pytest.fixture
    def bucket(self, s3_bucket):
        return s3_bucket

    @pytest.fixture
    def destination_config(self, moto_endpoint, s3_bucket, monkeypatch):
        monkeypatch.setenv("KIT_S3_KEY", "testing")
        monkeypatch.setenv("KIT_S3_SECRET", "kit-secret-value")
        return {"bucket": s3_bucket, "prefix": PREFIX, "endpoint": moto_endpoint,
                "allow_http": True, "region": "us-east-1", "access_key_env": "KIT_S3_KEY",
                "secret_key_env": "KIT_S3_SECRET", "part_size": "5MB"}

    @pytest.fixture
    def invalid_configs(self, moto_endpoint):
        base = {"bucket": "b", "endpoint": moto_endpoint, "allow_http": True}
        return [
            ({**base, "access_key_env": "KIT_S3_KEY"}, "secret_key_env"),
            ({**base, "allow_http": False}, "endpoint"),
            ({**base, "part_size": "1MB"}, "part_size"),
            ({**base, "bucket": "s3://b/path"}, "bucket"),
            ({**base, "access_key_env": "KIT_UNSET_KEY", "secret_key_env": "KIT_UNSET_SECRET"},
             "access_key_env"),
            ({"endpoint": moto_endpoint}, "bucket"),
        ]


class TestGCSDestination(ObjectStoreKit):
    @pytest.fixture
    def destination_spec(self):
        return build_registry().destinations["gcs"].spec

    @pytest.fixture
    def endpoint(self, gcs_endpoint):
        return gcs_endpoint

    @pytest.fixture
    def bucket(self, gcs_bucket):
        return gcs_bucket

    @pytest.fixture
    def destination_config(self, gcs_endpoint, gcs_bucket, gcs_credentials):
        return {"bucket": gcs_bucket, "prefix": PREFIX, "endpoint": gcs_endpoint,
                "allow_http": True, "credentials_file": gcs_credentials, "part_size": "5MB"}

    @pytest.fixture
    def invalid_configs(self, gcs_endpoint, tmp_path):
        base = {"bucket": "b", "endpoint": gcs_endpoint, "allow_http": True}
        return [
            ({**base, "credentials_file": str(tmp_path / "missing.json")}, "credentials_file"),
            ({**base, "upload_concurrency": 0}, "upload_concurrency"),
            ({**base, "endpoint": "ftp://x"}, "endpoint"),
        ]
