"""Config models of the console service: a node's `console` table and the site-wide `[console]` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConsoleConfig(BaseModel):
    """A node's serial console: a transport URL (rfc2217://, telnet://, tcp://, ssh://, serial://, ipmi-sol)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str


class ConsoleSettings(BaseModel):
    """The `[console]` section: defaults for every console."""

    model_config = ConfigDict(extra="forbid", frozen=True)
