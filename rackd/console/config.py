"""Config models of the console service: a node's `console` table and the site-wide `[console]` section."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rackd.model import Severity
from rackd.secrets import Secret

SCHEMES = frozenset({"tcp", "telnet", "rfc2217", "serial", "ssh", "ipmi-sol"})
Seconds = Annotated[float, Field(gt=0)]


class ConsoleConfig(BaseModel):
    """A node's serial console: a transport URL (rfc2217://, telnet://, tcp://, ssh://, serial://, ipmi-sol)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    # ssh:// only: the login (the user is in the URL) and the host keys to trust (default ~/.ssh/known_hosts).
    password: Secret | None = None
    client_key: Path | None = None
    known_hosts: Path | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value.split(":", 1)[0] == "ipmi-sol":
            return value  # the node's BMC session provides it
        if value.split(":", 1)[0] not in SCHEMES:
            raise ValueError("must be 'ipmi-sol' or a URL: tcp://, telnet://, rfc2217://, ssh://, serial://")
        try:
            from rackd_console.urls import check_url  # noqa: PLC0415 - the transports plugin knows the URL forms
        except ImportError:
            return value  # plugin not installed: the service reports the console as unsupported
        check_url(value)
        return value

    @property
    def scheme(self) -> str:
        """tcp, telnet, rfc2217, serial, ssh or ipmi-sol."""
        return self.url.split(":", 1)[0]


class PatternConfig(BaseModel):
    """A regular expression that turns a console line into a `console_pattern` event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$")]
    regex: str
    severity: Severity = Severity.WARNING
    # Also tried on a line still being written (a login prompt has no newline after it).
    partial: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


def _check_strftime(value: str) -> str:
    dt.datetime(2026, 1, 1, tzinfo=dt.UTC).strftime(value)
    if any(sep in value for sep in (" | ", " # ", " % ")) or "\n" in value:
        raise ValueError("must not contain ' | ', ' # ', ' % ' or a newline (they separate the log's fields)")
    return value


class ConsoleSettings(BaseModel):
    """The `[console]` section: defaults for every console."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ring_buffer_bytes: Annotated[int, Field(ge=4096)] = 1 << 20
    timestamp_format: str = "%Y-%m-%dT%H:%M:%S.%fZ"  # strftime, UTC; %f is microseconds
    rotate_bytes: Annotated[int, Field(ge=4096)] = 64 << 20
    rotate_keep: Annotated[int, Field(ge=1, le=1000)] = 10
    escape_char: Annotated[str, Field(min_length=1, max_length=1)] = "&"
    default_patterns: bool = True
    patterns: list[PatternConfig] = []
    context_lines: Annotated[int, Field(ge=0, le=100)] = 5
    pattern_interval: Seconds = 300.0  # at most one event per pattern per console in this many seconds
    open_timeout: Seconds = 20.0
    reconnect_initial: Seconds = 1.0
    reconnect_max: Seconds = 60.0
    stable_after: Seconds = 90.0  # a session closed sooner counts as closed by the device (stale SOL)
    flap_limit: Annotated[int, Field(ge=1)] = 3  # that many short sessions in a row: the device is flapping
    flap_backoff: Seconds = 300.0
    watcher_buffer_bytes: Annotated[int, Field(ge=4096)] = 4 << 20  # a watcher further behind is cut off

    @field_validator("timestamp_format")
    @classmethod
    def _timestamp(cls, value: str) -> str:
        return _check_strftime(value)

    @field_validator("escape_char")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value.isspace() or ord(value) > 126:
            raise ValueError("must be one printable ASCII character, e.g. '&' or '~'")
        return value
