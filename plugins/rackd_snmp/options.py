"""Typed options of the `snmp` driver: where the PDU is, SNMP v1/v2c/v3 credentials, profile and limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from rackd.drivers.contract import DriverOptions
from rackd.secrets import Secret
from rackd_snmp.profiles import PROFILES_BY_NAME


class CommunityAuth(DriverOptions):
    """SNMP v1 or v2c: a community string (a secret)."""

    version: Literal["1", "2c"]
    community: Secret


class UsmAuth(DriverOptions):
    """SNMP v3 user-based security, authPriv only: PDUs switch mains power, so requests are signed and encrypted."""

    version: Literal["3"]
    user: Annotated[str, Field(min_length=1, max_length=32)]
    auth_protocol: Literal["SHA", "SHA-256"] = "SHA"
    auth_key: Secret
    priv_protocol: Literal["AES", "AES-256"] = "AES"
    priv_key: Secret
    context: str = ""


SnmpAuth = Annotated[CommunityAuth | UsmAuth, Field(discriminator="version")]


class SnmpOptions(DriverOptions):
    """`[[pdu]]` keys of the snmp driver (besides id, rack, driver, protected, tags, poll_interval, call_timeout)."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 161
    snmp: SnmpAuth
    profile: str | None = None  # force a vendor profile instead of detecting it from sysObjectID
    # One request's wait and resends; the runtime's call deadline bounds the whole operation on top.
    timeout: Annotated[float, Field(gt=0, le=30)] = 1.0
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    max_repetitions: Annotated[int, Field(ge=1, le=64)] = 32
    native_cycle: bool = False  # use the PDU's own reboot command for `cycle` (semantics differ per vendor)
    # v1/v2c GET/GETNEXT/GETBULK through rackd's own BER codec (~10x less CPU than pysnmp); false sends them
    # through pysnmp like v3 and SETs, for a device that misbehaves with it. Ignored for v3.
    lean_codec: bool = True

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in PROFILES_BY_NAME:
            raise ValueError(f"unknown profile; expected one of: {', '.join(sorted(PROFILES_BY_NAME))}")
        return value

    def config_warnings(self) -> list[tuple[str, str]]:
        """v1/v2c carry the community in clear text, and switching outlets uses it."""
        if isinstance(self.snmp, CommunityAuth):
            return [
                (
                    "snmp.version",
                    (
                        f"SNMP v{self.snmp.version} sends the community in clear text and it can switch "
                        "outlets; prefer version 3 (authPriv)"
                    ),
                )
            ]
        return []

    @property
    def endpoint(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"
