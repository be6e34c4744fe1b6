"""Options of the `ipmi` driver: a node's `bmc = { driver = "ipmi", … }` table, minus `driver`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rackd.drivers.contract import DriverOptions
from rackd.secrets import Secret

PRIVILEGE_LEVELS = {"user": 2, "operator": 3, "admin": 4}


class IpmiOptions(DriverOptions):
    """How to reach one BMC over IPMI 2.0 (RMCP+) and how gently to treat it."""

    host: str
    port: int = Field(default=623, ge=1, le=65535)
    username: str
    password: Secret
    kg: Secret | None = None  # BMC key, when the BMC has one set
    privilege: Literal["user", "operator", "admin"] | None = None  # None: admin, falling back to operator
    # Preference order; pyghmi proposes 17 (SHA-256) first and falls back to 3 (SHA-1) by itself.
    cipher_suites: tuple[Literal[0, 3, 17], ...] = (17, 3)
    allow_cipher_suite_0: bool = False  # suite 0 has no authentication at all: only on explicit request
    min_command_interval: float = Field(default=0.005, ge=0.0, le=5.0)  # seconds between IPMI requests
    session_idle_timeout: float = Field(default=50.0, gt=0.0)  # re-login after this long idle (BMCs: 60 s)
    # Sessions rackd may have on the BMC at once, half-made ones of lost logins included (budget.py). Many BMCs
    # allow 4 per user or channel: one stays free for the operator's own ipmitool.
    max_sessions: int = Field(default=3, ge=1, le=32)
    session_setup_timeout: float = Field(default=10.0, gt=0.0)  # BMC drops a half-made session (OpenBMC: 5 s)
    bmc_idle_timeout: float = Field(default=60.0, gt=0.0)  # BMC drops an idle session (IPMI's usual 60 s)
    auth_failure_holdoff: float = Field(default=300.0, ge=0.0)  # no new login with a refused password
    presence_probe: bool = True  # a session-less ping before each login: a silent BMC costs no thread
    use_dcmi: bool = True  # DCMI power reading as system_power; falls back to PSU input power sensors
    log_batch_max: int = Field(default=64, ge=1, le=1024)  # SEL entries returned per read_log call
    log_reset_replay: int = Field(default=16, ge=0, le=256)  # newest entries reported after a clear/wrap

    @model_validator(mode="after")
    def _check_suites(self) -> IpmiOptions:
        if not self.cipher_suites:
            raise ValueError("cipher_suites must name at least one suite (17, 3)")
        if 0 in self.cipher_suites and not self.allow_cipher_suite_0:
            raise ValueError(
                "cipher suite 0 means no authentication; set allow_cipher_suite_0 = true to allow it explicitly"
            )
        return self

    @property
    def where(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"
