"""Switched outlets: observed state and pending flags, and the SETs that switch them (vendor encodings as data)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from rackd.errors import DeviceRefusedError, UnsupportedError
from rackd.model import PowerAction, PowerState, PowerTarget
from rackd_snmp.client import Index, SnmpClient, Value
from rackd_snmp.naming import outlet_id, unit_prefix
from rackd_snmp.profile import Command, OutletTable

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutletStatus:
    """One outlet as last read."""

    target: PowerTarget
    index: Index
    state: PowerState
    pending: bool
    power_on: str | None
    slug_prefix: str  # "outlet7", or "unit2_outlet7" on a linked unit


def _index_text(index: Index) -> str:
    return ".".join(str(part) for part in index)


def decode_state(table: OutletTable, raw: Value) -> tuple[PowerState, bool]:
    """(state, pending) from the state column's raw value (and nothing else)."""
    if not isinstance(raw, int):
        return PowerState.UNKNOWN, False
    return table.states.get(raw, PowerState.UNKNOWN), raw in table.pending_states


def _power_on(table: OutletTable, raw: Value) -> str | None:
    if table.power_on_column is None or not isinstance(raw, int):
        return None
    return table.power_on_states.get(raw, table.power_on_default or f"code_{raw}")


def _name(table: OutletTable, names: dict[str, dict[Index, Value]], index: Index) -> str | None:
    for column in table.name_columns:
        value = names.get(column, {}).get(index)
        if isinstance(value, str) and value:
            return value
    return None


async def read_outlets(client: SnmpClient, table: OutletTable, max_repetitions: int) -> list[OutletStatus]:
    """Every outlet of the table: state, pending flag, name and power-up setting, in one column walk."""
    columns = [table.state_column, *table.name_columns]
    if table.pending_column:
        columns.append(table.pending_column)
    if table.power_on_column:
        columns.append(table.power_on_column)
    walked = await client.walk(columns, max_repetitions)
    statuses = []
    for index, raw in sorted(walked[table.state_column].items()):
        state, pending = decode_state(table, raw)
        if table.pending_column:
            pending = pending or walked[table.pending_column].get(index) in table.pending_values
        target_id = outlet_id(index, table.unit_part, table.master_unit)
        power_on = _power_on(table, walked[table.power_on_column].get(index)) if table.power_on_column else None
        statuses.append(
            OutletStatus(
                target=PowerTarget(id=target_id, label=_name(table, walked, index)),
                index=index,
                state=state,
                pending=pending,
                power_on=power_on,
                slug_prefix=f"{unit_prefix(index, table.unit_part, table.master_unit)}outlet{index[-1]}",
            )
        )
    return statuses


async def read_one(client: SnmpClient, table: OutletTable, index: Index) -> tuple[PowerState, bool]:
    """(state, pending) of one outlet, in one GET."""
    suffix = _index_text(index)
    oids = [f"{table.state_column}.{suffix}"]
    if table.pending_column:
        oids.append(f"{table.pending_column}.{suffix}")
    values = await client.get(oids)
    state, pending = decode_state(table, values[oids[0]])
    if table.pending_column:
        pending = pending or values[oids[1]] in table.pending_values
    return state, pending


def command_for(table: OutletTable, action: PowerAction, native_cycle: bool) -> Command:
    """The SET for an action; cycle only natively and only when configured (the runtime cycles by off → on)."""
    if action in (PowerAction.ON, PowerAction.OFF):
        return table.commands[action]
    if action in (PowerAction.CYCLE, PowerAction.RESET):
        if not native_cycle:
            raise UnsupportedError(
                f"outlet {action} is done by the runtime as off → observed off → on; "
                "set native_cycle = true to use the PDU's own reboot command instead"
            )
        if table.native_cycle is None:
            raise UnsupportedError("this PDU family has no native outlet reboot command")
        return table.native_cycle
    raise UnsupportedError(f"a PDU outlet cannot {action}")


async def switch(
    client: SnmpClient, table: OutletTable, target: str, index: Index, action: PowerAction, native_cycle: bool
) -> None:
    """Check for a pending command and the current state, then send the one SET that is needed (or none)."""
    command = command_for(table, action, native_cycle)
    state, pending = await read_one(client, table, index)
    where = f"{client.endpoint} outlet {target}"
    if pending:
        raise DeviceRefusedError(f"{where}: a command is already pending on the outlet; not stacking another")
    if action in (PowerAction.ON, PowerAction.OFF) and state == PowerState(action.value):
        log.info("outlet_already_in_state", endpoint=client.endpoint, outlet=target, state=str(state))
        return
    if action in (PowerAction.CYCLE, PowerAction.RESET) and state is not PowerState.ON:
        raise DeviceRefusedError(
            f"{where}: is {state}; a native reboot of an outlet that is not on differs per vendor "
            "(APC leaves it off, Eaton turns it on), so turn it on explicitly"
        )
    await client.set_integer(f"{command.column}.{_index_text(index)}", command.value)
