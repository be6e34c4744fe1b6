"""Every built-in vendor profile, and which ones a sysObjectID points at."""

from __future__ import annotations

from rackd_snmp.profile import Profile
from rackd_snmp.profiles import apc, cyberpower, eaton, raritan, servertech, vertiv

ALL_PROFILES: tuple[Profile, ...] = (
    *apc.PROFILES,
    *raritan.PROFILES,
    *servertech.PROFILES,
    *eaton.PROFILES,
    *cyberpower.PROFILES,
    *vertiv.PROFILES,
)
PROFILES_BY_NAME: dict[str, Profile] = {profile.name: profile for profile in ALL_PROFILES}


def _is_under(oid: str, prefix: str) -> bool:
    return oid == prefix or oid.startswith(prefix + ".")


def candidates(sys_object_id: str) -> list[Profile]:
    """Profiles whose sysObjectID prefix matches, most specific prefix first, table order otherwise."""
    scored = []
    for order, profile in enumerate(ALL_PROFILES):
        lengths = [len(prefix) for prefix in profile.sys_object_ids if _is_under(sys_object_id, prefix)]
        if lengths:
            scored.append((-max(lengths), order, profile))
    return [profile for _, _, profile in sorted(scored, key=lambda item: (item[0], item[1]))]
