"""The conformance kit against the ``s3`` (moto server), ``gcs`` (the suite's XML-API
server) and ``azure`` (Azurite) destinations. The back door reads the buckets and
containers over plain HTTP, never obstore.

Payloads are 12 MiB with 5 MiB parts, so every write is a real multipart upload (three
parts or blocks, the last one short) and every abort happens with parts already uploaded.
"""

from __future__ import annotations

import time

import pytest
from servers import BucketReader
from servers.azurite import ACCOUNT, ACCOUNT_KEY, ContainerReader

from rivet_core.plugins import build_registry
from rivet_core.testing import DestinationTests
from rivet_core.testing.destinations import drive_write, payload_bytes

PREFIX = "sandbox/{export}"


class PrefixedReader:
    """A :class:`BucketReader` (or :class:`ContainerReader`) seen from the destination's
    location (``sandbox/kit``)."""

    def __init__(self, reader: BucketReader | ContainerReader, prefix: str) -> None:
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


class AzurePrefixedReader(PrefixedReader):
    def leftovers(self) -> list[str]:
        # An aborted upload's staged blocks stay uncommitted: no reader lists or reads them,
        # and Azure itself discards them (at the next commit of the name, or after a week),
        # so nobody must clean them up: not leftovers in the kit's sense. What exactly
        # remains is pinned down by the tests of TestAzureDestination below.
        return []


class TestAzureDestination(ObjectStoreKit):
    @pytest.fixture
    def destination_spec(self):
        return build_registry().destinations["azure"].spec

    @pytest.fixture
    def container_reader(self, azurite_endpoint, azure_container):
        return ContainerReader(azurite_endpoint, azure_container)

    @pytest.fixture
    def backdoor(self, container_reader):
        return AzurePrefixedReader(container_reader, "sandbox/kit/")

    @pytest.fixture
    def destination_config(self, azurite_endpoint, azure_container, monkeypatch):
        monkeypatch.setenv("KIT_AZURE_KEY", ACCOUNT_KEY)
        return {"container": azure_container, "prefix": PREFIX, "account_name": ACCOUNT,
                "endpoint": azurite_endpoint, "allow_http": True,
                "account_key_env": "KIT_AZURE_KEY", "part_size": "5MB"}

    @pytest.fixture
    def invalid_configs(self, azurite_endpoint, monkeypatch):
        monkeypatch.setenv("KIT_AZURE_KEY", ACCOUNT_KEY)
        monkeypatch.setenv("KIT_AZURE_SAS", "sv=2019-12-12&sig=x")
        base = {"container": "kit", "account_name": ACCOUNT, "endpoint": azurite_endpoint,
                "allow_http": True}
        return [
            ({"account_name": ACCOUNT}, "container"),
            ({**base, "container": "Kit_Exports"}, "container"),
            ({**base, "container": "azure://kit/path"}, "container"),
            ({k: v for k, v in base.items() if k != "account_name"}, "account_name"),
            ({**base, "account_name": "Not-An-Account"}, "account_name"),
            ({**base, "account_key_env": "KIT_AZURE_KEY", "sas_token_env": "KIT_AZURE_SAS"},
             "sas_token_env"),
            ({**base, "account_key_env": "KIT_UNSET_KEY"}, "account_key_env"),
            ({**base, "sas_token_env": "KIT_UNSET_SAS"}, "sas_token_env"),
            ({**base, "endpoint": f"{azurite_endpoint}?sv=2019-12-12&sig=x"}, "endpoint"),
            ({**base, "allow_http": False}, "endpoint"),
            ({**base, "part_size": "512KB"}, "part_size"),
            ({**base, "part_size": "4GB"}, "part_size"),
        ]

    # Azure-specific: what an abort leaves, which the kit's back door does not report.

    @staticmethod
    def wait_for_staged_blocks(reader: ContainerReader) -> list[str]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            staged = reader.open_uploads("sandbox/kit/")
            if staged:
                return staged
            time.sleep(0.02)
        raise AssertionError("no block was staged")

    def test_abort_leaves_uncommitted_blocks_that_the_next_commit_discards(
            self, destination, container_reader, payload, other_payload):
        target = destination.open("kit_file.bin")
        view = memoryview(payload)
        for start in range(0, len(payload), 64 << 10):
            target.write(view[start:start + (64 << 10)])
        staged = self.wait_for_staged_blocks(container_reader)
        target.abort()
        # Staged, never committed: no reader sees the blob, Azure has no call to delete the
        # blocks, and they hold storage until Azure discards them.
        assert staged == ["sandbox/kit/kit_file.bin"]
        assert container_reader.list() == {}
        assert container_reader.open_uploads() == staged
        drive_write(destination, "kit_file.bin", other_payload)
        assert container_reader.open_uploads() == []
        assert container_reader.read("sandbox/kit/kit_file.bin") == other_payload

    def test_overwrite_in_progress_leaves_the_committed_blob_readable(
            self, destination, container_reader, other_payload):
        drive_write(destination, "kit_file.bin", other_payload)
        target = destination.open("kit_file.bin")
        payload = payload_bytes(12 << 20, 5)
        try:
            view = memoryview(payload)
            for start in range(0, len(payload), 64 << 10):
                target.write(view[start:start + (64 << 10)])
            self.wait_for_staged_blocks(container_reader)
            assert container_reader.read("sandbox/kit/kit_file.bin") == other_payload
        finally:
            target.abort()
        assert container_reader.list() == {"sandbox/kit/kit_file.bin": len(other_payload)}
        assert container_reader.read("sandbox/kit/kit_file.bin") == other_payload
