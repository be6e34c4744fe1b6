"""Who is on the other end of the control socket (SO_PEERCRED) and which role the config gives them."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

from rackd.control.protocol import Role


@dataclass(frozen=True, slots=True)
class Peer:
    """A connected local user: kernel-verified uid/gid/pid, supplementary groups, and the granted role."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    user: str
    role: Role

    def describe(self) -> str:
        """`user (uid N, pid M)` for logs, audit and denials."""
        return f"{self.user} (uid {self.uid}, pid {self.pid})"


@dataclass(frozen=True, slots=True)
class RoleMap:
    """Users and groups per role, from the config's [control] section."""

    viewers: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()

    def role_of(self, uid: int, groups: frozenset[int]) -> Role:
        """The highest role any of the peer's names grants; root and the daemon's own user are admins."""
        if uid in {0, os.geteuid()}:
            return Role.ADMIN
        names = {_user_name(uid)} | {f"@{_group_name(gid)}" for gid in groups}
        for role, members in ((Role.ADMIN, self.admins), (Role.OPERATOR, self.operators), (Role.VIEWER, self.viewers)):
            if names & members:
                return role
        return Role.NONE


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _supplementary_groups(uid: int, pid: int, gid: int) -> frozenset[int]:
    # The kernel tells only the primary gid; the supplementary groups come from the peer's /proc status.
    groups = {gid}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:  # noqa: PTH123 - a kernel file, read once
            for line in status:
                if line.startswith("Groups:"):
                    groups.update(int(g) for g in line.split()[1:])
                    break
    except OSError:
        with contextlib.suppress(KeyError, OSError):
            groups.update(os.getgrouplist(_user_name(uid), gid))
    return frozenset(groups)


def peer_of(sock: socket.socket, roles: RoleMap) -> Peer:
    """Identify the peer of a connected unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    groups = _supplementary_groups(uid, pid, gid)
    return Peer(pid, uid, gid, groups, _user_name(uid), roles.role_of(uid, groups))
