"""Keys of ``[exports.destination]`` for ``type = "s3"`` and ``type = "gcs"``.

Pure data and cross-field rules; nothing here imports obstore or touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from rivet_core.api import DestinationContext, doc, parse_size

MIN_PART = 5 << 20
"""S3 and GCS refuse multipart parts below 5 MiB (except the last)."""
MAX_PART = 5 << 30


def split_prefix(prefix: str) -> list[str]:
    """The prefix's path segments: leading, trailing and doubled ``/`` carry no meaning."""
    return [part for part in prefix.split("/") if part]


@attrs.frozen(kw_only=True)
class ObjectStoreOptions:
    """Keys shared by the object-store destinations."""

    bucket: str = doc("Bucket name (no `gs://` or `s3://`, no `/`).")
    prefix: str = doc(
        "Key prefix the files go under, joined to each file name with exactly one `/` "
        "(leading, trailing and doubled slashes are ignored; `\"\"` is the bucket root). "
        "Placeholders: `{export}`, `{date}` (UTC `YYYY-MM-DD` of the run start), `{run_id}`.",
        default="{export}",
    )
    endpoint: str | None = doc(
        "Service URL instead of the provider's (MinIO, R2, an emulator), e.g. "
        "`https://minio.internal:9000`. An `http://` URL also needs `allow_http = true`.",
        default=None,
    )
    allow_http: bool = doc(
        "Allow a plain-HTTP `endpoint` (credentials and data travel unencrypted; test "
        "servers only).",
        default=False,
    )
    ca_file: str | None = doc(
        "PEM file of the CA(s) that signed an https `endpoint`'s certificate (a private CA "
        "in front of MinIO, an appliance), relative to the config file's directory unless "
        "absolute. Trusted in addition to the system CAs; the certificate is always "
        "checked, chain and host name.",
        default=None,
    )
    part_size: str | int = doc(
        "Size of each multipart-upload part (`\"8MB\"`; 5 MiB to 5 GiB). A file is uploaded "
        "in parts of this size while it is written; memory per open file is about "
        "`part_size` x (`upload_concurrency` + 1).",
        default="8MB",
    )
    upload_concurrency: int = doc(
        "Parts of one file uploaded at the same time.", default=4
    )
    max_retries: int = doc(
        "Retries of one HTTP request after a transient failure (5xx, connection error, "
        "timeout), with exponential backoff from 100 ms to 15 s and jitter. 0 disables.",
        default=5,
    )
    retry_timeout_s: float = doc(
        "Give up retrying one request after this many seconds since its first attempt.",
        default=120,
    )
    request_timeout_s: float = doc(
        "Timeout of one HTTP request (one part upload), in seconds.", default=120
    )
    connect_timeout_s: float = doc("Timeout to establish a connection, in seconds.",
                                   default=10)

    def part_bytes(self) -> int:
        return parse_size(self.part_size)

    def ca_path(self, config_dir: Path) -> Path | None:
        if self.ca_file is None:
            return None
        path = Path(self.ca_file).expanduser()
        return path if path.is_absolute() else config_dir / path

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        placeholders = DestinationContext.template_problem(self.prefix)
        if placeholders:
            issues.append(("prefix", placeholders))
        if not self.bucket or "/" in self.bucket or "://" in self.bucket:
            issues.append(("bucket", f"{self.bucket!r} is not a bucket name "
                                     "(write the name only, the path goes in `prefix`)"))
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
            if not MIN_PART <= size <= MAX_PART:
                issues.append(("part_size", f"must be between 5MB and 5GB, got "
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
