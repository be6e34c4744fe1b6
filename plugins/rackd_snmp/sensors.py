"""One full read of a PDU: every metric table, Raritan typed sensors and outlet states, as Readings."""

from __future__ import annotations

import datetime as dt

import structlog

from rackd.model import Health, Reading, SensorKind, utc_now
from rackd_snmp.client import Index, SnmpClient, Value
from rackd_snmp.convert import WrongTypeError, scaled, with_decimals
from rackd_snmp.discovery import Layout
from rackd_snmp.energy import EnergyCounters
from rackd_snmp.naming import slug
from rackd_snmp.outlets import OutletStatus, read_outlets

log = structlog.get_logger(__name__)

_TRUTH_FALSE = 2  # SNMPv2-TC TruthValue


class SensorReader:
    """Reads one PDU's sensors; keeps per-session state (energy history, table sizes for GETBULK sizing)."""

    def __init__(self, client: SnmpClient, layout: Layout, max_repetitions: int) -> None:
        """Bind to a discovered PDU."""
        self._client = client
        self._layout = layout
        self._max_repetitions = max_repetitions
        self._rows: dict[str, int] = {}  # table key → rows last time: one GETBULK fits the table when possible
        self._energy = EnergyCounters()
        self._warned: set[str] = set()

    def _duplicate(self, sensor: str, oid: str) -> None:
        """Two rows map to one sensor id (an index shape the profile did not foresee): keep the first, say so once."""
        if sensor not in self._warned:
            self._warned.add(sensor)
            log.warning("pdu_duplicate_sensor_id", endpoint=self._client.endpoint, sensor=sensor, oid=oid)

    def _repetitions(self, key: str) -> int:
        rows = self._rows.get(key)
        return self._max_repetitions if rows is None else max(1, min(self._max_repetitions, rows + 1))

    async def _walk(self, key: str, columns: list[str]) -> dict[str, dict[Index, Value]]:
        walked = await self._client.walk(columns, self._repetitions(key))
        self._rows[key] = max((len(rows) for rows in walked.values()), default=0)
        return walked

    def _reading(self, sensor: str, kind: SensorKind, value: float | None, now: dt.datetime) -> Reading:
        flags = self._energy.flags(sensor, value) if kind is SensorKind.ENERGY else ()
        health = Health.UNKNOWN if value is None else Health.OK
        return Reading.of(sensor, kind, value, health=health, observed_at=now, flags=flags)

    def _bad_value(self, oid: str, exc: WrongTypeError) -> None:
        log.warning("pdu_bad_value", endpoint=self._client.endpoint, oid=oid, problem=str(exc))

    async def read(self) -> list[Reading]:
        """Every reading the profile defines and the PDU answers, in canonical units."""
        now = utc_now()
        readings: dict[str, Reading] = {}
        for table in self._layout.profile.tables:
            columns = [f"{table.entry}.{metric.column}" for metric in table.metrics]
            walked = await self._walk(table.entry, columns)
            for metric, column in zip(table.metrics, columns, strict=True):
                for index, raw in sorted(walked[column].items()):
                    sensor = slug(metric.name, index, table.unit_part, table.master_unit)
                    if sensor is None:
                        continue
                    if sensor in readings:
                        self._duplicate(sensor, f"{column}.{'.'.join(map(str, index))}")
                        continue
                    try:
                        value = scaled(metric, raw)
                    except WrongTypeError as exc:
                        self._bad_value(f"{column}.{'.'.join(map(str, index))}", exc)
                        value = None
                    readings[sensor] = self._reading(sensor, metric.kind, value, now)
        await self._read_typed(readings, now)
        if self._layout.outlets is not None:
            statuses = await read_outlets(self._client, self._layout.outlets, self._repetitions("outlets"))
            self._rows["outlets"] = len(statuses)
            for status in statuses:
                for reading in _outlet_readings(status, now):
                    readings.setdefault(reading.sensor, reading)
        return list(readings.values())

    async def _read_typed(self, readings: dict[str, Reading], now: dt.datetime) -> None:
        for typed in self._layout.profile.typed_tables:
            columns = [typed.value_column] + ([typed.available_column] if typed.available_column else [])
            walked = await self._walk(typed.value_column, columns)
            available = walked.get(typed.available_column or "", {})
            decimals = self._layout.decimals.get(typed.value_column, {})
            for index, raw in sorted(walked[typed.value_column].items()):
                sensor_type = typed.types.get(index[-1])
                if sensor_type is None:
                    continue
                sensor = slug(typed.name, index[:-1], typed.unit_part, typed.master_unit, sensor=sensor_type.suffix)
                if sensor is None:
                    continue
                if sensor in readings:
                    self._duplicate(sensor, f"{typed.value_column}.{'.'.join(map(str, index))}")
                    continue
                try:
                    value = with_decimals(raw, decimals.get(index, 0))
                except WrongTypeError as exc:
                    self._bad_value(f"{typed.value_column}.{'.'.join(map(str, index))}", exc)
                    value = None
                if available.get(index) == _TRUTH_FALSE:
                    value = None
                readings[sensor] = self._reading(sensor, sensor_type.kind, value, now)


def _outlet_readings(status: OutletStatus, now: dt.datetime) -> list[Reading]:
    states = (str(status.state),) + (("pending",) if status.pending else ())
    health = Health.UNKNOWN if status.state == "unknown" else Health.OK
    out = [Reading.of(f"{status.slug_prefix}_state", SensorKind.STATUS, None, health=health, observed_at=now,
                      states=states)]
    if status.power_on is not None:
        out.append(
            Reading.of(f"{status.slug_prefix}_power_on_state", SensorKind.STATUS, None, observed_at=now,
                       states=(status.power_on,))
        )
    return out
