"""Building an obstore client from S3/GCS options, and saying which credentials it uses.

Every secret read here is registered with :mod:`rivet_core.redact` before the client exists,
so no error message can carry it. The description of the credential source (never the
secret) goes into every authentication error, and the description of the CAs trusted into
every TLS error.

TLS: obstore checks an https endpoint's certificate (chain and host name) against the
system CAs (``SSL_CERT_FILE`` replaces them for the whole process); ``ca_file`` adds the CAs
of its PEM file for this destination only (obstore's ``root_certificate`` client option).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.api import DestinationContext, DestinationError, register_secret
from rivet_objstore.config import GCSOptions, ObjectStoreOptions, S3Options, split_prefix

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


@attrs.frozen(kw_only=True)
class StoreHandle:
    """An obstore client plus what the destination needs to describe it."""

    store: Any
    scheme: str
    """``s3`` or ``gs``: the URI scheme of ``location()``."""
    bucket: str
    prefix: str
    """Rendered prefix without leading or trailing ``/`` (``""`` for the bucket root)."""
    credential_source: str
    """Which credentials are in use, for error messages; never a secret."""
    trust: str = "the system CAs"
    """Which CAs an https endpoint's certificate is checked against, for error messages."""


def _trust(path: Path | None) -> str:
    if path is None:
        bundle = os.environ.get("SSL_CERT_FILE")
        return f"the system CAs (SSL_CERT_FILE={bundle})" if bundle else "the system CAs"
    return f"the system CAs and the CA file {path}"


def _client_options(options: ObjectStoreOptions, ca: Path | None) -> ClientConfig:
    config: ClientConfig = {
        "allow_http": options.allow_http,
        "timeout": dt.timedelta(seconds=options.request_timeout_s),
        "connect_timeout": dt.timedelta(seconds=options.connect_timeout_s),
    }
    if ca is not None:
        try:
            config["root_certificate"] = ca.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DestinationError(f"ca_file {ca}: cannot be read ({exc})",
                                   hint="give a PEM file of CA certificates") from None
    return config


def _retry_config(options: ObjectStoreOptions) -> RetryConfig:
    # obstore retries 5xx, connection errors and timeouts of each request itself; a request
    # that still fails surfaces as an error the destination maps to a transient one.
    return {
        "max_retries": options.max_retries,
        "retry_timeout": dt.timedelta(seconds=options.retry_timeout_s),
        "backoff": {"init_backoff": dt.timedelta(milliseconds=100),
                    "max_backoff": dt.timedelta(seconds=15), "base": 2},
    }


def _prefix(options: ObjectStoreOptions, context: DestinationContext) -> str:
    return "/".join(split_prefix(context.render(options.prefix)))


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise DestinationError(f"environment variable {name!r} is not set",
                               hint="export it before running rivet")
    return value


def build_s3(options: S3Options, context: DestinationContext) -> StoreHandle:
    from obstore.store import S3Store

    kwargs: dict[str, Any] = {}
    if options.region is not None:
        kwargs["region"] = options.region
    if options.endpoint is not None:
        kwargs["endpoint"] = options.endpoint
    if options.anonymous:
        kwargs["skip_signature"] = True
        source = "anonymous (unsigned requests)"
    elif options.access_key_env is not None and options.secret_key_env is not None:
        secret = _env(options.secret_key_env)
        register_secret(secret)
        kwargs["access_key_id"] = _env(options.access_key_env)
        kwargs["secret_access_key"] = secret
        source = (f"access key from environment variables {options.access_key_env} / "
                  f"{options.secret_key_env}")
        if options.session_token_env is not None:
            token = _env(options.session_token_env)
            register_secret(token)
            kwargs["session_token"] = token
            source += f" with session token from {options.session_token_env}"
    else:
        register_secret(os.environ.get("AWS_SECRET_ACCESS_KEY"))
        register_secret(os.environ.get("AWS_SESSION_TOKEN"))
        source = ("the default AWS chain (AWS_* environment variables, web identity, "
                  "container or instance metadata)")
    ca = options.ca_path(context.config_dir)
    try:
        store = S3Store(options.bucket, client_options=_client_options(options, ca),
                        retry_config=_retry_config(options), **kwargs)
    except DestinationError:
        raise
    except Exception as exc:
        raise DestinationError(f"cannot configure S3 client for bucket {options.bucket!r}: "
                               f"{exc}; credentials: {source}",
                               hint=_ca_hint(ca, exc)) from exc
    return StoreHandle(store=store, scheme="s3", bucket=options.bucket,
                       prefix=_prefix(options, context), credential_source=source,
                       trust=_trust(ca))


def build_gcs(options: GCSOptions, context: DestinationContext) -> StoreHandle:
    from obstore.store import GCSStore

    kwargs: dict[str, Any] = {}
    if options.endpoint is not None:
        kwargs["base_url"] = options.endpoint
    path = options.credentials_path(context.config_dir)
    if path is not None:
        _register_key_file(path)
        kwargs["service_account"] = str(path)
        source = f"service account file {path}"
    else:
        for variable in ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH",
                         "GOOGLE_APPLICATION_CREDENTIALS"):
            if os.environ.get(variable):
                _register_key_file(os.environ[variable])
        register_secret(os.environ.get("GOOGLE_SERVICE_ACCOUNT_KEY"))
        source = ("the default Google chain (GOOGLE_SERVICE_ACCOUNT / "
                  "GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default credentials, "
                  "instance metadata)")
    ca = options.ca_path(context.config_dir)
    try:
        store = GCSStore(options.bucket, client_options=_client_options(options, ca),
                         retry_config=_retry_config(options), **kwargs)
    except DestinationError:
        raise
    except Exception as exc:
        raise DestinationError(f"cannot configure GCS client for bucket {options.bucket!r}: "
                               f"{exc}; credentials: {source}",
                               hint=_ca_hint(ca, exc)) from exc
    return StoreHandle(store=store, scheme="gs", bucket=options.bucket,
                       prefix=_prefix(options, context), credential_source=source,
                       trust=_trust(ca))


def _ca_hint(ca: Path | None, exc: Exception) -> str | None:
    if ca is not None and "root_certificate" in str(exc):
        return f"ca_file {ca} must hold PEM certificates (-----BEGIN CERTIFICATE-----)"
    return None


def _register_key_file(path: object) -> None:
    """Mask the private key and refresh token of a credentials file wherever they appear."""
    try:
        with open(str(path), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return  # obstore reports an unreadable file itself, naming the path
    if isinstance(data, dict):
        for key in ("private_key", "refresh_token", "client_secret"):
            value = data.get(key)
            if isinstance(value, str):
                register_secret(value)
