"""The `snmp` driver: rack PDUs over SNMP v1/v2c/v3 with vendor profiles as tables, one engine per process."""

from __future__ import annotations

from typing import Any, ClassVar

from rackd.drivers.contract import Capability, DriverOptions, SessionContext
from rackd_snmp.client import EnginePool, SnmpClient
from rackd_snmp.discovery import discover
from rackd_snmp.options import SnmpOptions
from rackd_snmp.session import SnmpSession


class SnmpDriver:
    """Rack PDUs: inlet/phase/outlet metering, outlet switching, inventory."""

    name: ClassVar[str] = "snmp"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POWER, Capability.SENSORS, Capability.INVENTORY}
    )
    options_model: ClassVar[type[DriverOptions]] = SnmpOptions

    def __init__(self, max_in_flight: int = 24) -> None:
        """One engine for every PDU of this process, created on the first open."""
        self._pool = EnginePool(max_in_flight)

    async def open(self, context: SessionContext, options: Any) -> SnmpSession:
        """Detect the PDU's profile (the first exchange doubles as the credential check) and open a session."""
        assert isinstance(options, SnmpOptions)
        client = SnmpClient(self._pool, options)
        layout = await discover(client, options.profile, options.max_repetitions)
        context.log.info("pdu_session_opened", device=context.device_id, profile=layout.profile.name)
        return SnmpSession(client, layout, options)

    @property
    def pool(self) -> EnginePool:
        """The process's SNMP engine and in-flight cap (diagnostics and tests)."""
        return self._pool

    async def aclose(self) -> None:
        """Close the engine and its UDP socket."""
        self._pool.close()
