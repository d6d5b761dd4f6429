"""pymysql, as the mysql source uses it, and every pymysql internal Rivet relies on, in one
place.

Connections are opened with pymysql's parameter encoders and no decoders at all
(:data:`ENCODERS`, ``use_unicode=False``): a read's values stay the server's text, as
``bytes``, which the column builders parse into Arrow (:mod:`rivet_mysql.builders`). The few
statements whose rows Rivet reads as Python values (:func:`rows`: the session's settings,
the runner's small statements, EXPLAIN and ``information_schema`` lookups) are decoded here
the way pymysql itself would with its defaults (``pymysql.converters.decoders``, by column
type code).

pymysql reliance: :func:`prepared_fields` describes a statement with ``COM_STMT_PREPARE``
and ``COM_STMT_CLOSE`` through pymysql's packet functions ``_execute_command`` and
``_read_packet`` (pymysql has no prepared statements); :func:`result_fields` reads the
column definitions from ``cursor._result.fields`` (pymysql's ``FieldDescriptorPacket``:
``type_code``, ``flags``, ``charsetnr``, ``length``, ``scale``), which pymysql keeps but does
not document; :func:`close` clears ``connection._result.unbuffered_active`` before closing a
connection in the middle of a result (otherwise pymysql tries to read the rest from the
closed socket); :func:`rows` follows pymysql's own choice of text encoding per column
(``pymysql.connections.TEXT_TYPES``).

:func:`idle` reads ``connection._result.unbuffered_active`` and the server status flags
pymysql keeps (``server_status``); :func:`reset` sends ``COM_RESET_CONNECTION`` through
``_execute_command`` and ``_read_ok_packet``, then repeats what pymysql's ``connect`` does
after authenticating (``set_character_set``, ``autocommit``).

TLS (:func:`tls_arguments`): Rivet builds the ``ssl.SSLContext`` itself for every mode that
needs TLS (pymysql then requires TLS and refuses a server that does not offer it, from
pymysql 1.2.0 on); ``disable`` passes ``ssl_disabled``; without TLS settings pymysql's own
default applies (TLS when the server offers it, nothing checked). After connecting,
:func:`session_cipher` asks the server whether the session is encrypted, so a mode that
requires TLS never depends on the driver alone. :func:`tls_failure` reads which TLS check
failed from the ``ssl`` exception pymysql keeps as ``original_exception``.

Not here: the session settings of a read (:mod:`.session`), errors (:mod:`.errors`).
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable, Sequence
from typing import Any

import pymysql
from pymysql import converters
from pymysql.connections import TEXT_TYPES, Connection
from pymysql.constants import COMMAND, CR, FIELD_TYPE, SERVER_STATUS
from pymysql.cursors import Cursor, SSCursor
from pymysql.protocol import FieldDescriptorPacket

from rivet_core.api import ConnectionParams
from rivet_mysql.config import MysqlConfig
from rivet_mysql.typemap import BINARY_CHARSET, MyField

ENCODERS = {k: v for k, v in converters.conversions.items() if not isinstance(k, int)}
"""pymysql's parameter encoders without any decoder: result values stay the server's bytes."""


def tls_context(params: ConnectionParams) -> ssl.SSLContext:
    """The TLS context of a mode that requires TLS: ``require`` checks nothing;
    ``verify-ca`` checks the chain against ``ca_file`` alone, or the system store without
    it; ``verify-full`` also the host name (an IP address is matched against the
    certificate's IP names)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not params.tls_verified():
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if params.ca_file is not None:
        context.load_verify_locations(cafile=params.ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = params.tls_mode == "verify-full"
    # Python 3.13 adds X.509 strict checks by default; libpq and ConnectorX (OpenSSL's
    # defaults) do not make them, and a mode must mean the same on every driver.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def tls_arguments(params: ConnectionParams) -> dict[str, Any]:
    """pymysql's TLS arguments for the mode."""
    if params.tls_mode is None:
        return {}
    if params.tls_mode == "disable":
        return {"ssl_disabled": True}
    return {"ssl": tls_context(params)}


def connect(params: ConnectionParams, config: MysqlConfig) -> Connection[Any]:
    """A new connection (autocommit, utf8mb4, values as bytes); pymysql's errors raised."""
    return pymysql.connect(
        host=params.host, port=params.port, user=params.user,
        password=params.password or "", database=params.database or None,
        charset="utf8mb4", use_unicode=False, conv=ENCODERS, autocommit=True,
        connect_timeout=config.connect_timeout_s,
        program_name=config.application_name, **tls_arguments(params),
    )


def session_cipher(conn: Connection[Any]) -> str:
    """The TLS cipher of the session as the server reports it (``""``: plaintext)."""
    row = execute(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    value = row[1] if row else b""
    return value.decode() if isinstance(value, bytes) else str(value or "")


def check_encrypted(conn: Connection[Any], params: ConnectionParams, label: str) -> bool:
    """Whether the server reports the session as encrypted. When the mode requires TLS and
    it is not, the connection is closed and the TLS error raised: whatever the driver did
    (pymysql before 1.2.0 went on in plaintext when the server did not offer TLS), a
    plaintext session never carries a read."""
    encrypted = bool(session_cipher(conn))
    if params.tls_required() and not encrypted:
        close(conn)
        raise params.tls_failure("not-encrypted", "the server reports no Ssl_cipher", label)
    return encrypted


def tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """(which check, the reason) when a connection attempt failed on TLS, else None.
    pymysql reports a failed handshake as error 2003 "can't connect", keeping the ``ssl``
    exception as ``original_exception``; a server without TLS is error 2026."""
    args = getattr(exc, "args", ())
    if args and args[0] == CR.CR_SSL_CONNECTION_ERROR:
        return "no-tls", str(args[1]) if len(args) > 1 else ""
    original = getattr(exc, "original_exception", None)
    if isinstance(original, ssl.SSLCertVerificationError):
        host = original.verify_code in _NAME_MISMATCH
        return ("host" if host else "chain"), str(original.verify_message or original)
    if isinstance(original, ssl.SSLError):
        return "handshake", str(original)
    return None


_NAME_MISMATCH = (62, 64)
"""OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH."""


def is_mariadb(conn: Connection[Any]) -> bool:
    return "mariadb" in conn.get_server_info().lower()


def close(conn: Connection[Any]) -> None:
    """Close ``conn``, even in the middle of an unbuffered result."""
    # An unbuffered result still streaming would make pymysql read it to its end when the
    # cursor or result is collected; the socket closing below ends it instead.
    result = getattr(conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    if conn.open:
        conn.close()


COM_RESET_CONNECTION = 0x1F
"""The protocol command that resets a session without reconnecting (MySQL 5.7.3, MariaDB
10.2.4; pymysql has no name for it)."""


def idle(conn: Connection[Any]) -> bool:
    """Whether ``conn`` is between statements: no unbuffered result still streaming, no
    transaction open (the server's status flags of its last reply)."""
    result = getattr(conn, "_result", None)
    if result is not None and result.unbuffered_active:
        return False
    return not conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS


def reset(conn: Connection[Any]) -> None:
    """``COM_RESET_CONNECTION``: the transaction rolled back, session variables back to the
    server's defaults, user variables, temporary tables and prepared statements gone; then
    what pymysql set when it connected, set again (the character set and autocommit, which
    the reset also returned to the server's defaults). A server that refuses raises."""
    conn._execute_command(COM_RESET_CONNECTION, b"")
    conn._read_ok_packet()
    conn.set_character_set(conn.charset, conn.collation)
    conn.autocommit(conn.autocommit_mode)


def _field(packet: Any) -> MyField:
    return MyField(name=packet.name, type_code=packet.type_code, flags=packet.flags,
                   charsetnr=packet.charsetnr, length=packet.length, decimals=packet.scale)


def result_fields(cursor: Cursor) -> list[MyField]:
    """The column definitions of the result ``cursor`` holds (none without a result)."""
    result = cursor._result
    return [_field(f) for f in (result.fields if result is not None else [])]


def mogrify(conn: Connection[Any], sql: str, params: Sequence[Any]) -> str:
    """``sql`` with its parameters as literals (as pymysql sends them)."""
    return Cursor(conn).mogrify(sql, params) if params else sql


def prepared_fields(conn: Connection[Any], sql: str) -> list[MyField]:
    """Column definitions of ``sql`` from ``COM_STMT_PREPARE``; nothing is executed."""
    conn._execute_command(COMMAND.COM_STMT_PREPARE, sql)
    ok = conn._read_packet()
    statement_id, columns, params = struct.unpack_from("<IHH", ok.get_all_data(), 1)
    try:
        for _ in range(params + (1 if params else 0)):  # definitions, then EOF
            conn._read_packet()
        packets = [conn._read_packet(FieldDescriptorPacket) for _ in range(columns)]
        if columns:
            conn._read_packet()  # EOF
    finally:
        conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", statement_id))
    return [_field(p) for p in packets]


def unbuffered(conn: Connection[Any], sql: str, params: Sequence[Any]) -> SSCursor:
    """``sql`` started on an unbuffered cursor: the server streams the rows, read only as
    the cursor is asked for them."""
    cursor = conn.cursor(SSCursor)
    cursor.execute(sql, params or None)
    return cursor


def execute(conn: Connection[Any], sql: str,
            params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    """Run a statement; its first row as the server's bytes (None without one)."""
    with conn.cursor(Cursor) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _decoder(field: MyField, encoding: str) -> Callable[[bytes], Any]:
    """How pymysql with ``use_unicode`` and its default decoders turns a value of ``field``
    into Python: text in the connection's encoding (bytes for a binary string), anything
    else read as ASCII, then the decoder of its type code."""
    code = field.type_code
    text: str | None = "ascii"
    if code == FIELD_TYPE.JSON:
        text = encoding
    elif code in TEXT_TYPES:
        text = None if field.charsetnr == BINARY_CHARSET else encoding
    convert = converters.decoders.get(code)
    if convert is converters.through:
        convert = None

    def decode(value: bytes) -> Any:
        decoded: Any = value if text is None else value.decode(text)
        return decoded if convert is None else convert(decoded)

    return decode


def rows(conn: Connection[Any], sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Every row of a statement, by column name, as Python values (``int``, ``Decimal``,
    ``float``, ``str``, ``date``, naive ``datetime``, ``timedelta``; ``bytes`` for binary
    strings)."""
    with conn.cursor(Cursor) as cursor:
        cursor.execute(sql, params or None)
        fields = result_fields(cursor)
        records = cursor.fetchall()
    decoders = [_decoder(field, conn.encoding) for field in fields]
    names = [field.name for field in fields]
    return [{name: None if value is None else decode(value)
             for name, decode, value in zip(names, decoders, record, strict=True)}
            for record in records]


__all__ = ["ENCODERS", "check_encrypted", "close", "connect", "execute", "idle", "is_mariadb",
           "mogrify", "prepared_fields", "reset", "result_fields", "rows", "session_cipher",
           "tls_arguments", "tls_context", "tls_failure", "unbuffered"]
