"""Which profile a PDU speaks (sysObjectID plus a probe GET, or forced), and what it has: outlets, decimals."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from rackd.errors import UnsupportedError
from rackd_snmp.client import Index, SnmpClient
from rackd_snmp.profile import OutletTable, Profile
from rackd_snmp.profiles import PROFILES_BY_NAME, candidates

log = structlog.get_logger(__name__)

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


@dataclass(slots=True)
class Layout:
    """What one PDU turned out to be; built once per session."""

    profile: Profile
    sys_object_id: str | None
    outlets: OutletTable | None
    decimals: dict[str, dict[Index, int]] = field(default_factory=dict)  # per typed table value column


async def detect_profile(client: SnmpClient, forced: str | None) -> tuple[Profile, str | None]:
    """The forced profile, or the first candidate for the sysObjectID whose probe subtree answers."""
    answer = await client.get([SYS_OBJECT_ID])
    sys_object_id = answer[SYS_OBJECT_ID]
    if forced is not None:
        return PROFILES_BY_NAME[forced], str(sys_object_id) if sys_object_id is not None else None
    if not isinstance(sys_object_id, str):
        raise UnsupportedError(f"{client.endpoint}: no sysObjectID ({SYS_OBJECT_ID}); set `profile` in the config")
    options = candidates(sys_object_id)
    for profile in options:
        if await client.first_under(profile.probe):
            return profile, sys_object_id
    tried = ", ".join(profile.name for profile in options) or "none matches"
    raise UnsupportedError(
        f"{client.endpoint}: sysObjectID {sys_object_id} is not a known PDU (profiles tried: {tried}); "
        f"set `profile` to one of: {', '.join(sorted(PROFILES_BY_NAME))}"
    )


async def discover(client: SnmpClient, forced: str | None, max_repetitions: int) -> Layout:
    """Detect the profile, pick the outlet table that answers and read Raritan's decimal digits."""
    profile, sys_object_id = await detect_profile(client, forced)
    outlets = None
    for table in profile.outlets:
        if await client.first_under(table.state_column):
            outlets = table
            break
    layout = Layout(profile=profile, sys_object_id=sys_object_id, outlets=outlets)
    if profile.typed_tables:
        columns = [typed.decimals_column for typed in profile.typed_tables]
        walked = await client.walk(columns, max_repetitions)
        for typed in profile.typed_tables:
            layout.decimals[typed.value_column] = {
                index: value for index, value in walked[typed.decimals_column].items() if isinstance(value, int)
            }
    log.info(
        "pdu_profile_detected",
        endpoint=client.endpoint,
        profile=profile.name,
        sys_object_id=sys_object_id,
        switched=outlets is not None,
    )
    return layout
