"""Picks the console transport from the URL scheme: tcp://, telnet://, rfc2217://, serial://, ssh://."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from rackd.drivers.contract import ConsoleTransport
from rackd.errors import UnsupportedError
from rackd.secrets import Secret
from rackd_console.rfc2217 import Rfc2217Transport
from rackd_console.serial_port import SerialTransport
from rackd_console.ssh import SshTransport
from rackd_console.tcp import TcpTransport
from rackd_console.telnet import TelnetTransport

NETWORK_SCHEMES = frozenset({"tcp", "telnet", "rfc2217", "ssh"})
SCHEMES = NETWORK_SCHEMES | {"serial"}
# Transports that carry console bytes (and typed passwords) in clear text on the wire.
UNENCRYPTED_SCHEMES = frozenset({"tcp", "telnet", "rfc2217"})


def _baud(query: dict[str, list[str]], url: str) -> int | None:
    values = query.get("baud")
    if not values:
        return None
    try:
        baud = int(values[-1])
    except ValueError:
        raise ValueError(f"console URL {url}: baud must be a number") from None
    if baud <= 0:
        raise ValueError(f"console URL {url}: baud must be positive")
    return baud


def check_url(url: str) -> None:
    """Raise ValueError saying what is wrong with a console URL (config validation)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"console URL {url}: scheme must be one of {', '.join(sorted(SCHEMES))}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"console URL {url}: invalid port") from None
    if parts.scheme in NETWORK_SCHEMES and (not parts.hostname or port is None):
        raise ValueError(f"console URL {url}: needs host and port, e.g. {parts.scheme}://10.0.2.5:7001")
    if parts.scheme == "ssh" and not parts.username:
        raise ValueError(f"console URL {url}: needs a user, e.g. ssh://console@10.0.2.5:22")
    if parts.scheme == "serial" and (parts.netloc or not parts.path.startswith("/")):
        raise ValueError(f"console URL {url}: needs a device path, e.g. serial:///dev/ttyUSB0?baud=115200")
    if parts.password:
        raise ValueError(f"console URL {url}: must not carry a password; use the console table's password key")
    _baud(parse_qs(parts.query), url)


def open_transport(
    url: str, *, password: Secret | None = None, client_key: Path | None = None, known_hosts: Path | None = None
) -> ConsoleTransport:
    """The transport for a console URL (checked with `check_url` first)."""
    check_url(url)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or ""
    port = parts.port or 0
    if parts.scheme == "tcp":
        return TcpTransport(host, port)
    if parts.scheme == "telnet":
        return TelnetTransport(host, port)
    if parts.scheme == "rfc2217":
        return Rfc2217Transport(host, port, _baud(query, url))
    if parts.scheme == "serial":
        return SerialTransport(parts.path, _baud(query, url) or 115200)
    if parts.scheme == "ssh":
        return SshTransport(host, port, parts.username or "", password, client_key, known_hosts)
    raise UnsupportedError(f"console URL {url}: no transport for scheme {parts.scheme!r}")
