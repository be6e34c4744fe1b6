"""Translation of pyghmi failures and IPMI completion codes into rackd errors naming the BMC."""

from __future__ import annotations

from rackd.errors import (
    AuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceRefusedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
    SessionLimitError,
    UnsupportedError,
)
from rackd_ipmi.budget import frees_in

CC_INVALID_COMMAND = 0xC1
CC_NOT_PRESENT = 0xCB
CC_NOT_IN_PRESENT_STATE = 0xD5

_AUTH_MARKERS = (
    "incorrect password",
    "unauthorized name",
    "unauthorized role",
    "invalid role",
    "invalid integrity check value",
    "wrong kg",
    "unauthorized guid",
)
_TIMEOUT_MARKERS = ("timeout", "no longer connected", "failed to initialize")


def login_error(where: str, exc: BaseException) -> DeviceError:
    """The rackd error for a failed pyghmi login (Command construction)."""
    text = str(exc.args[0]) if exc.args and exc.args[0] is not None else ""
    lowered = text.lower()
    if any(marker in lowered for marker in _AUTH_MARKERS):
        return AuthError(f"{where}: BMC refused the credentials ({text})")
    if "insufficient resources" in lowered:
        return SessionLimitError(f"{where}: BMC has no free session ({text})")
    if "session budget" in lowered:
        return SessionLimitError(f"{where}: {text}", retry_after=frees_in(text))
    if "cipher suite" in lowered or "algorithm" in lowered:
        return UnsupportedError(f"{where}: no common cipher suite with the BMC ({text})")
    if "unable to transmit" in lowered or isinstance(exc, OSError):
        return DeviceUnreachableError(f"{where}: cannot send to the BMC ({text or exc!r})")
    # pyghmi reports a silent BMC (and, on some BMCs, an unknown user) as an error without text.
    return DeviceTimeoutError(f"{where}: no answer to login{f' ({text})' if text else ''}")


def call_error(where: str, what: str, exc: BaseException) -> DeviceError:
    """The rackd error for a failed pyghmi call after login."""
    text = str(exc.args[0]) if exc.args and exc.args[0] is not None else repr(exc)
    code = getattr(exc, "ipmicode", 0) or 0
    if code:
        return completion_error(where, what, code, text)
    if any(marker in text.lower() for marker in _TIMEOUT_MARKERS):
        return DeviceTimeoutError(f"{where}: {what}: no answer ({text})")
    if isinstance(exc, OSError):
        return DeviceUnreachableError(f"{where}: {what}: {text}")
    return DeviceProtocolError(f"{where}: {what}: {text}")


def completion_error(where: str, what: str, code: int, text: str = "") -> DeviceError:
    """The rackd error for a non-zero IPMI completion code."""
    detail = f"completion code 0x{code:02X}{f', {text}' if text else ''}"
    if code == CC_NOT_IN_PRESENT_STATE:
        return DeviceRefusedError(f"{where}: {what} refused in the present state ({detail})")
    if code == CC_INVALID_COMMAND:
        return UnsupportedError(f"{where}: {what} not supported by this BMC ({detail})")
    if code == 0xFFFF:  # pyghmi's marker for "no response"
        return DeviceTimeoutError(f"{where}: {what}: no answer")
    return DeviceProtocolError(f"{where}: {what} failed ({detail})")
