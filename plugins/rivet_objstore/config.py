"""Keys of ``[exports.destination]`` for ``type = "s3"``, ``"gcs"`` and ``"azure"``.

Pure data and cross-field rules; nothing here imports obstore or touches the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

import attrs

from rivet_core.api import DestinationContext, doc, parse_size

MIN_PART = 5 << 20
"""S3 and GCS refuse multipart parts below 5 MiB (except the last)."""
MAX_PART = 5 << 30
AZURE_MAX_PART = 4000 << 20
"""Azure's largest block (service version 2019-12-12 and later)."""
AZURE_MAX_BLOCKS = 50_000
"""Blocks one Azure blob can be committed from."""
AZURE_ACCOUNT_ENV = "AZURE_STORAGE_ACCOUNT_NAME"

_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")

# Keys every object-store destination has, documented once so the reference cannot say two
# different things about the same key.
_ALLOW_HTTP = ("Allow a plain-HTTP `endpoint` (credentials and data travel unencrypted; test "
               "servers only).")
_CA_FILE = ("PEM file of the CA(s) that signed an https `endpoint`'s certificate (a private CA "
            "in front of MinIO, an appliance), relative to the config file's directory unless "
            "absolute. Trusted in addition to the system CAs; the certificate is always "
            "checked, chain and host name.")
_UPLOAD_CONCURRENCY = "Parts of one file uploaded at the same time."
_MAX_RETRIES = ("Retries of one HTTP request after a transient failure (5xx, connection error, "
                "timeout), with exponential backoff from 100 ms to 15 s and jitter. 0 disables.")
_RETRY_TIMEOUT = "Give up retrying one request after this many seconds since its first attempt."
_REQUEST_TIMEOUT = "Timeout of one HTTP request (one part upload), in seconds."
_CONNECT_TIMEOUT = "Timeout to establish a connection, in seconds."
_PLACEHOLDERS = ("Placeholders: `{export}`, `{date}` (UTC `YYYY-MM-DD` of the run start), "
                 "`{run_id}`.")


def split_prefix(prefix: str) -> list[str]:
    """The prefix's path segments: leading, trailing and doubled ``/`` carry no meaning."""
    return [part for part in prefix.split("/") if part]


class StoreOptions:
    """The keys every object-store destination has, and the rules they share.

    A mixin rather than an attrs base class: each options class declares all its fields
    itself, so that the key naming its bucket or container comes first in its reference
    table (attrs puts a base class's fields before the subclass's).
    """

    PART_LIMITS: ClassVar[tuple[int, int, str]] = (MIN_PART, MAX_PART, "5MB and 5GB")
    """Smallest and largest ``part_size``, and how an error says so."""

    prefix: str
    endpoint: str | None
    allow_http: bool
    ca_file: str | None
    part_size: str | int
    upload_concurrency: int
    max_retries: int
    retry_timeout_s: float
    request_timeout_s: float
    connect_timeout_s: float

    def part_bytes(self) -> int:
        return parse_size(self.part_size)

    def ca_path(self, config_dir: Path) -> Path | None:
        if self.ca_file is None:
            return None
        path = Path(self.ca_file).expanduser()
        return path if path.is_absolute() else config_dir / path

    def container_issues(self) -> list[tuple[str, str]]:
        """Problems with the key naming the bucket or container."""
        raise NotImplementedError

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        placeholders = DestinationContext.template_problem(self.prefix)
        if placeholders:
            issues.append(("prefix", placeholders))
        issues += self.container_issues()
        if self.endpoint is not None:
            if not self.endpoint.startswith(("http://", "https://")):
                issues.append(("endpoint", "must start with https:// (or http:// with "
                                           "allow_http = true)"))
            elif self.endpoint.startswith("http://") and not self.allow_http:
                issues.append(("endpoint", "is plain HTTP: set allow_http = true to allow "
                                           "unencrypted traffic, or use https://"))
            elif self.endpoint.startswith("http://") and self.ca_file is not None:
                issues.append(("ca_file", "the endpoint is plain HTTP, so no certificate is "
                                          "checked: use an https:// endpoint, or remove "
                                          "ca_file"))
        ca = self.ca_path(config_dir)
        if ca is not None and not ca.is_file():
            issues.append(("ca_file", f"file {self.ca_file!r} does not exist"))
        try:
            size = self.part_bytes()
        except ValueError as exc:
            issues.append(("part_size", str(exc)))
        else:
            low, high, words = self.PART_LIMITS
            if not low <= size <= high:
                issues.append(("part_size", f"must be between {words}, got "
                                            f"{self.part_size!r}"))
        if self.upload_concurrency < 1:
            issues.append(("upload_concurrency", "must be at least 1"))
        for key in ("max_retries", "retry_timeout_s"):
            if getattr(self, key) < 0:
                issues.append((key, "must not be negative"))
        for key in ("request_timeout_s", "connect_timeout_s"):
            if getattr(self, key) <= 0:
                issues.append((key, "must be positive"))
        return issues


@attrs.frozen(kw_only=True)
class ObjectStoreOptions(StoreOptions):
    """Keys shared by the bucket-based destinations (``s3``, ``gcs``)."""

    bucket: str = doc("Bucket name (no `gs://` or `s3://`, no `/`).")
    prefix: str = doc(
        "Key prefix the files go under, joined to each file name with exactly one `/` "
        "(leading, trailing and doubled slashes are ignored; `\"\"` is the bucket root). "
        + _PLACEHOLDERS,
        default="{export}",
    )
    endpoint: str | None = doc(
        "Service URL instead of the provider's (MinIO, R2, an emulator), e.g. "
        "`https://minio.internal:9000`. An `http://` URL also needs `allow_http = true`.",
        default=None,
    )
    allow_http: bool = doc(_ALLOW_HTTP, default=False)
    ca_file: str | None = doc(_CA_FILE, default=None)
    part_size: str | int = doc(
        "Size of each multipart-upload part (`\"8MB\"`; 5 MiB to 5 GiB). A file is uploaded "
        "in parts of this size while it is written; memory per open file is about "
        "`part_size` x (`upload_concurrency` + 1).",
        default="8MB",
    )
    upload_concurrency: int = doc(_UPLOAD_CONCURRENCY, default=4)
    max_retries: int = doc(_MAX_RETRIES, default=5)
    retry_timeout_s: float = doc(_RETRY_TIMEOUT, default=120)
    request_timeout_s: float = doc(_REQUEST_TIMEOUT, default=120)
    connect_timeout_s: float = doc(_CONNECT_TIMEOUT, default=10)

    def container_issues(self) -> list[tuple[str, str]]:
        if not self.bucket or "/" in self.bucket or "://" in self.bucket:
            return [("bucket", f"{self.bucket!r} is not a bucket name "
                               "(write the name only, the path goes in `prefix`)")]
        return []


def _env_issue(key: str, name: str | None) -> list[tuple[str, str]]:
    if name is not None and name not in os.environ:
        return [(key, f"environment variable {name!r} is not set")]
    return []


@attrs.frozen(kw_only=True)
class S3Options(ObjectStoreOptions):
    """``type = "s3"``: Amazon S3 or an S3-compatible store."""

    region: str | None = doc(
        "Bucket region (`eu-west-1`); default from `AWS_REGION`/`AWS_DEFAULT_REGION`, then "
        "`us-east-1`.",
        default=None,
    )
    access_key_env: str | None = doc(
        "Name of the environment variable holding the access key id. With "
        "`secret_key_env`; without both, the default AWS chain is used (`AWS_*` variables, "
        "web identity, container or instance credentials).",
        default=None,
    )
    secret_key_env: str | None = doc(
        "Name of the environment variable holding the secret access key.", default=None
    )
    session_token_env: str | None = doc(
        "Name of the environment variable holding a session token (temporary credentials).",
        default=None,
    )
    anonymous: bool = doc(
        "Send unsigned requests (a bucket that allows anonymous writes); no credentials are "
        "looked up.",
        default=False,
    )

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().config_issues(config_dir)
        if (self.access_key_env is None) != (self.secret_key_env is None):
            missing = "secret_key_env" if self.secret_key_env is None else "access_key_env"
            issues.append((missing, "access_key_env and secret_key_env go together: set both "
                                    "or neither"))
        if self.session_token_env is not None and self.access_key_env is None:
            issues.append(("session_token_env", "needs access_key_env and secret_key_env"))
        if self.anonymous and self.access_key_env is not None:
            issues.append(("anonymous", "anonymous = true sends no credentials; remove "
                                        "access_key_env/secret_key_env or anonymous"))
        issues += _env_issue("access_key_env", self.access_key_env)
        issues += _env_issue("secret_key_env", self.secret_key_env)
        issues += _env_issue("session_token_env", self.session_token_env)
        return issues


@attrs.frozen(kw_only=True)
class GCSOptions(ObjectStoreOptions):
    """``type = "gcs"``: Google Cloud Storage (XML API)."""

    credentials_file: str | None = doc(
        "Service account key file (JSON), relative to the config file's directory unless "
        "absolute. Without it, the default Google chain is used (`GOOGLE_SERVICE_ACCOUNT`, "
        "`GOOGLE_APPLICATION_CREDENTIALS`, gcloud application-default credentials, instance "
        "metadata). GCS has no anonymous writes through this client.",
        default=None,
    )

    def credentials_path(self, config_dir: Path) -> Path | None:
        if self.credentials_file is None:
            return None
        path = Path(self.credentials_file).expanduser()
        return path if path.is_absolute() else config_dir / path

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().config_issues(config_dir)
        path = self.credentials_path(config_dir)
        if path is not None and not path.is_file():
            issues.append(("credentials_file", f"file {self.credentials_file!r} does not "
                                               "exist"))
        return issues


@attrs.frozen(kw_only=True)
class AzureOptions(StoreOptions):
    """``type = "azure"``: Azure Blob Storage (block blobs)."""

    PART_LIMITS: ClassVar[tuple[int, int, str]] = (1 << 20, AZURE_MAX_PART, "1MB and 4000MB")

    container: str = doc(
        "Container name: 3 to 63 lowercase letters, digits and single hyphens (no URL, no "
        "`/`; the path goes in `prefix`).")
    prefix: str = doc(
        "Blob name prefix the files go under, joined to each file name with exactly one `/` "
        "(leading, trailing and doubled slashes are ignored; `\"\"` is the container root). "
        + _PLACEHOLDERS,
        default="{export}",
    )
    account_name: str | None = doc(
        "Storage account name (3 to 24 lowercase letters and digits); default from "
        f"`{AZURE_ACCOUNT_ENV}`.",
        default=None,
    )
    account_key_env: str | None = doc(
        "Name of the environment variable holding the storage account key (requests are "
        "signed with it). Or `sas_token_env`; without either, the default Azure chain is "
        "used (`AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`, a service principal's "
        "`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID`, workload identity, "
        "managed identity).",
        default=None,
    )
    sas_token_env: str | None = doc(
        "Name of the environment variable holding a shared access signature (`sv=…&sig=…` "
        "as the portal gives it; a leading `?` is ignored), best a container SAS (`sr=c`). "
        "It must allow read, add, create, write, delete and list (`sp=racwdl`).",
        default=None,
    )
    endpoint: str | None = doc(
        "Blob service URL of the account, instead of "
        "`https://<account_name>.blob.core.windows.net`: an emulator, with the account in "
        "the path (Azurite: `http://127.0.0.1:10000/devstoreaccount1`), another Azure "
        "cloud, a private endpoint. No query string. An `http://` URL also needs "
        "`allow_http = true`.",
        default=None,
    )
    allow_http: bool = doc(_ALLOW_HTTP, default=False)
    ca_file: str | None = doc(_CA_FILE, default=None)
    part_size: str | int = doc(
        "Size of each block (`\"8MB\"`; 1 MiB to 4000 MiB). A file is uploaded in blocks of "
        "this size while it is written and committed whole at the end; a blob holds at most "
        "50,000 blocks, so one file can be at most 50,000 x `part_size`. Memory per open "
        "file is about `part_size` x (`upload_concurrency` + 1).",
        default="8MB",
    )
    upload_concurrency: int = doc(_UPLOAD_CONCURRENCY, default=4)
    max_retries: int = doc(_MAX_RETRIES, default=5)
    retry_timeout_s: float = doc(_RETRY_TIMEOUT, default=120)
    request_timeout_s: float = doc(_REQUEST_TIMEOUT, default=120)
    connect_timeout_s: float = doc(_CONNECT_TIMEOUT, default=10)

    def account(self) -> str | None:
        """The storage account: ``account_name``, else the environment's."""
        return self.account_name or os.environ.get(AZURE_ACCOUNT_ENV) or None

    def container_issues(self) -> list[tuple[str, str]]:
        if self.container in ("$root", "$web") or _CONTAINER.fullmatch(self.container):
            return []
        return [("container", f"{self.container!r} is not a container name (3 to 63 "
                              "lowercase letters, digits and single hyphens; the path goes "
                              "in `prefix`)")]

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().config_issues(config_dir)
        account = self.account()
        if account is None:
            issues.append(("account_name", f"required: set it, or the environment variable "
                                           f"{AZURE_ACCOUNT_ENV}"))
        elif not _ACCOUNT.fullmatch(account):
            issues.append(("account_name", f"{account!r} is not a storage account name (3 to "
                                           "24 lowercase letters and digits)"))
        if self.endpoint is not None and "?" in self.endpoint:
            issues.append(("endpoint", "must not hold a query string: a SAS token goes in "
                                       "the environment variable sas_token_env names"))
        if self.account_key_env is not None and self.sas_token_env is not None:
            issues.append(("sas_token_env", "account_key_env and sas_token_env are "
                                            "alternatives: set one"))
        issues += _env_issue("account_key_env", self.account_key_env)
        issues += _env_issue("sas_token_env", self.sas_token_env)
        return issues
