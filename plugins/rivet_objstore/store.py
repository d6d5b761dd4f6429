"""Building an obstore client from S3/GCS/Azure options, and saying which credentials it uses.

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
from urllib.parse import quote, unquote, urlsplit

import attrs

from rivet_core.api import DestinationContext, DestinationError, register_secret
from rivet_objstore.config import (
    AZURE_ACCOUNT_ENV,
    AzureOptions,
    GCSOptions,
    S3Options,
    StoreOptions,
    split_prefix,
)

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


@attrs.frozen(kw_only=True)
class StoreHandle:
    """An obstore client plus what the destination needs to describe it."""

    store: Any
    scheme: str
    """``s3`` or ``gs``: the URI scheme of ``location()`` (Azure: the account URL's)."""
    bucket: str
    """The bucket or container name."""
    prefix: str
    """Rendered prefix without leading or trailing ``/`` (``""`` for the bucket root)."""
    credential_source: str
    """Which credentials are in use, for error messages; never a secret."""
    trust: str = "the system CAs"
    """Which CAs an https endpoint's certificate is checked against, for error messages."""
    account_url: str | None = None
    """Azure: the account's blob service URL, under which ``<container>/<blob>`` is each
    blob's own URL (Azure has no URI scheme naming a container without its account)."""
    container_key: str = "bucket"
    """The config key naming the bucket or container, for hints."""

    @property
    def root(self) -> str:
        """The bucket's or container's URL: ``s3://b``, ``gs://b``,
        ``https://acct.blob.core.windows.net/c``."""
        if self.account_url is not None:
            return f"{self.account_url}/{self.bucket}"
        return f"{self.scheme}://{self.bucket}"


def _trust(path: Path | None) -> str:
    if path is None:
        bundle = os.environ.get("SSL_CERT_FILE")
        return f"the system CAs (SSL_CERT_FILE={bundle})" if bundle else "the system CAs"
    return f"the system CAs and the CA file {path}"


def _client_options(options: StoreOptions, ca: Path | None) -> ClientConfig:
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


def _retry_config(options: StoreOptions) -> RetryConfig:
    # obstore retries 5xx, connection errors and timeouts of each request itself; a request
    # that still fails surfaces as an error the destination maps to a transient one.
    return {
        "max_retries": options.max_retries,
        "retry_timeout": dt.timedelta(seconds=options.retry_timeout_s),
        "backoff": {"init_backoff": dt.timedelta(milliseconds=100),
                    "max_backoff": dt.timedelta(seconds=15), "base": 2},
    }


def _prefix(options: StoreOptions, context: DestinationContext) -> str:
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


_AZURE_SECRET_ENV = ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY",
                     "AZURE_STORAGE_MASTER_KEY", "AZURE_STORAGE_CLIENT_SECRET",
                     "AZURE_CLIENT_SECRET", "AZURE_STORAGE_TOKEN")
_AZURE_SAS_ENV = ("AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN")


def build_azure(options: AzureOptions, context: DestinationContext) -> StoreHandle:
    from obstore.store import AzureStore

    account = options.account()
    if account is None:
        raise DestinationError(f"account_name is not set (nor {AZURE_ACCOUNT_ENV})",
                               hint="set account_name in [exports.destination]")
    # Passed explicitly so that AZURE_* variables obstore would read by itself (an endpoint,
    # use_emulator) cannot send the files somewhere other than location() says.
    account_url = (options.endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
    kwargs: dict[str, Any] = {"account_name": account, "endpoint": account_url,
                              "use_emulator": False}
    if options.account_key_env is not None:
        key = _env(options.account_key_env)
        register_secret(key)
        # credential_type: a token or key in the environment must not take precedence.
        kwargs.update(access_key=key, credential_type="access_key")
        source = f"account key from environment variable {options.account_key_env}"
    elif options.sas_token_env is not None:
        token = _env(options.sas_token_env).strip().lstrip("?")
        _register_sas(token)
        kwargs.update(sas_key=token, credential_type="sas_token")
        source = f"SAS token from environment variable {options.sas_token_env}"
    else:
        for variable in _AZURE_SECRET_ENV:
            register_secret(os.environ.get(variable))
        for variable in _AZURE_SAS_ENV:
            _register_sas(os.environ.get(variable, ""))
        source = ("the default Azure chain (AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, "
                  "AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID, workload identity, "
                  "managed identity)")
    ca = options.ca_path(context.config_dir)
    try:
        store = AzureStore(options.container, client_options=_client_options(options, ca),
                           retry_config=_retry_config(options), **kwargs)
    except DestinationError:
        raise
    except Exception as exc:
        raise DestinationError(f"cannot configure Azure client for container "
                               f"{options.container!r}: {exc}; credentials: "
                               f"{source}", hint=_ca_hint(ca, exc)) from exc
    return StoreHandle(store=store, scheme=urlsplit(account_url).scheme,
                       bucket=options.container, prefix=_prefix(options, context),
                       credential_source=source, trust=_trust(ca), account_url=account_url,
                       container_key="container")


def _register_sas(token: str) -> None:
    """Mask a SAS token and its signature, however a message encodes it. The other fields
    (dates, permission letters) are no secret, and masking them would shred other text."""
    register_secret(token)
    for field in token.lstrip("?").split("&"):
        name, _, value = field.partition("=")
        if name == "sig":
            for form in (value, unquote(value), quote(unquote(value), safe="")):
                register_secret(form)


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
