"""The RackdError tree: the only exceptions a driver may raise, and the core's own errors."""

from __future__ import annotations

from dataclasses import dataclass


class RackdError(Exception):
    """Base of every error rackd raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config: where (file, key path) and what was expected."""

    path: str  # key path, e.g. "node[3].bmc.port"; "" for the whole file
    message: str
    source: str  # the file, or "environment RACKD_MQTT__URL"

    def __str__(self) -> str:
        """Render as `source: path: message`."""
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigError(RackdError):
    """The config cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        """Keep all issues; the message lists them one per line."""
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class SecretError(RackdError):
    """A secret reference cannot be resolved (missing file, unset variable); never contains the secret."""


class DriverNotFoundError(RackdError):
    """No driver of that name is installed (entry-point group `rackd.drivers`)."""


class DeviceError(RackdError):
    """A device operation failed; drivers translate their library's exceptions into a subclass of this."""


class DeviceUnreachableError(DeviceError):
    """The device did not answer at the network level (refused, no route, no reply)."""


class DeviceTimeoutError(DeviceError):
    """The device did not answer within the deadline; the session is discarded, never reused."""


class DriverBusyError(DeviceError):
    """The driver had no capacity to start the call in time (its threads were busy with other devices).

    The device was not asked, so this says nothing about it: a poll is skipped, a command fails saying why.
    """


class DeviceProtocolError(DeviceError):
    """The device answered with something that cannot be understood (garbage, wrong type, bad length)."""


class AuthError(DeviceError):
    """The device refused the credentials; retried only after a long wait so accounts do not lock."""


class UnsupportedError(DeviceError):
    """The device or driver does not support this operation."""


class DeviceRefusedError(DeviceError):
    """The device refused the request in its present state (IPMI 0xD5, SNMP wrongValue, a pending command)."""


class SessionLimitError(DeviceError):
    """The device has no free sessions; `retry_after` (seconds), when known, is when one frees."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """`retry_after`: known when the driver counts the sessions itself (IPMI's session budget)."""
        super().__init__(message)
        self.retry_after = retry_after


def describe(exc: BaseException) -> str:
    """`Type: message`: how rackd names an error in logs, events, results and CLI output."""
    return f"{type(exc).__name__}: {exc}"
