"""An open session to one PDU: sensors, outlet power control and inventory over one SnmpClient."""

from __future__ import annotations

from collections.abc import Sequence

from rackd.errors import DeviceProtocolError, UnsupportedError
from rackd.model import Inventory, PowerAction, PowerState, PowerTarget, Reading
from rackd_snmp.client import Index, SnmpClient
from rackd_snmp.discovery import Layout
from rackd_snmp.options import SnmpOptions
from rackd_snmp.outlets import read_one, read_outlets, switch
from rackd_snmp.profile import OutletTable
from rackd_snmp.sensors import SensorReader

_SYS_DESCR = "1.3.6.1.2.1.1.1.0"


class SnmpSession:
    """A session to one PDU; SNMP is stateless, so closing only forgets this session's state."""

    def __init__(self, client: SnmpClient, layout: Layout, options: SnmpOptions) -> None:
        """Bind to a discovered PDU."""
        self._client = client
        self._layout = layout
        self._options = options
        self._sensors = SensorReader(client, layout, options.max_repetitions)
        self._outlet_index: dict[str, Index] = {}
        self._closed = False

    @property
    def profile_name(self) -> str:
        """The vendor profile in use."""
        return self._layout.profile.name

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceProtocolError(f"{self._client.endpoint}: session used after close")

    def _table(self) -> OutletTable:
        if self._layout.outlets is None:
            raise UnsupportedError(
                f"{self._client.endpoint}: no switched outlets answer ({self._layout.profile.description})"
            )
        return self._layout.outlets

    async def _index(self, target: str) -> Index:
        if target not in self._outlet_index:
            await self.power_targets()
        try:
            return self._outlet_index[target]
        except KeyError:
            known = ", ".join(self._outlet_index) or "none"
            raise UnsupportedError(f"{self._client.endpoint}: no outlet {target!r} (outlets: {known})") from None

    async def power_targets(self) -> Sequence[PowerTarget]:
        """The PDU's switched outlets, named as the PDU names them (none on a metered-only PDU)."""
        self._check_open()
        if self._layout.outlets is None:
            return []
        statuses = await read_outlets(self._client, self._layout.outlets, self._options.max_repetitions)
        self._outlet_index = {status.target.id: status.index for status in statuses}
        return [status.target for status in statuses]

    async def get_power(self, target: str) -> PowerState:
        """The outlet's observed state (one GET)."""
        self._check_open()
        table = self._table()
        state, _pending = await read_one(self._client, table, await self._index(target))
        return state

    async def set_power(self, target: str, action: PowerAction) -> None:
        """Send on/off (or the native reboot when configured); nothing when the outlet is already there."""
        self._check_open()
        table = self._table()
        await switch(self._client, table, target, await self._index(target), action, self._options.native_cycle)

    async def read_sensors(self) -> Sequence[Reading]:
        """Every metered value and outlet state, in canonical units."""
        self._check_open()
        return await self._sensors.read()

    async def read_inventory(self) -> Inventory:
        """Manufacturer, model, serial and firmware from the profile's OIDs (sysDescr when they are missing)."""
        self._check_open()
        spec = self._layout.profile.inventory
        lists = (spec.model, spec.serial, spec.firmware) if spec is not None else ((), (), ())
        oids = [oid for group in lists for oid in group] + [_SYS_DESCR]
        values = await self._client.get(oids)

        def first(group: tuple[str, ...]) -> str | None:
            for oid in group:
                value = values.get(oid)
                if isinstance(value, str) and value:
                    return value
            return None

        extra = {"profile": self._layout.profile.name}
        if self._layout.sys_object_id:
            extra["sys_object_id"] = self._layout.sys_object_id
        descr = values.get(_SYS_DESCR)
        if isinstance(descr, str) and descr:
            extra["sys_descr"] = descr
        return Inventory(
            manufacturer=spec.manufacturer if spec is not None else None,
            model=first(lists[0]),
            serial=first(lists[1]),
            firmware=first(lists[2]),
            extra=extra,
        )

    async def close(self) -> None:
        """Forget the session; the engine and its socket belong to the driver."""
        self._closed = True
