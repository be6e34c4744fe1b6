"""Command ids and their results, persisted in the state dir so that one id never acts twice, even across restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from rackd.model import Command, CommandResult, CommandStatus, CommandStep, utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    updated REAL NOT NULL
)
"""


def _result_to_json(result: CommandResult) -> str:
    return json.dumps(
        {
            "id": result.id,
            "device": result.device,
            "action": result.action,
            "status": result.status.value,
            "message": result.message,
            "at": result.at.isoformat(),
            "steps": [{"at": s.at.isoformat(), "message": s.message, "data": dict(s.data)} for s in result.steps],
        }
    )


def _result_from_json(text: str) -> CommandResult:
    import datetime as dt  # noqa: PLC0415 - only needed when reading back

    data: dict[str, Any] = json.loads(text)
    return CommandResult(
        id=data["id"],
        device=data["device"],
        action=data["action"],
        status=CommandStatus(data["status"]),
        message=data["message"],
        at=dt.datetime.fromisoformat(data["at"]),
        steps=tuple(
            CommandStep(dt.datetime.fromisoformat(s["at"]), s["message"], s.get("data", {})) for s in data["steps"]
        ),
    )


class CommandStore:
    """One row per command id: the request and its latest result (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        """Open or create the store."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a command id must be on disk before the device is touched, or a crash could let it act twice.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def get(self, command_id: str) -> CommandResult | None:
        """The stored result of a command id, if it was ever seen."""
        row = self._db.execute("SELECT result FROM commands WHERE id = ?", (command_id,)).fetchone()
        return None if row is None else _result_from_json(row[0])

    def claim(self, command: Command, result: CommandResult) -> bool:
        """Record a new command id with its first result; False if the id is already known."""
        request = json.dumps(
            {
                "id": command.id,
                "device": command.device,
                "action": command.action,
                "args": dict(command.args),
                "requested_by": command.requested_by,
                "reason": command.reason,
                "received_at": command.received_at.isoformat(),
            }
        )
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO commands (id, device, action, status, request, result, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                command.id,
                command.device,
                command.action,
                result.status.value,
                request,
                _result_to_json(result),
                utc_now().timestamp(),
            ),
        )
        return cursor.rowcount == 1

    def update(self, result: CommandResult) -> None:
        """Store the latest result of a known command."""
        self._db.execute(
            "UPDATE commands SET status = ?, result = ?, updated = ? WHERE id = ?",
            (result.status.value, _result_to_json(result), utc_now().timestamp(), result.id),
        )

    def unfinished(self) -> list[CommandResult]:
        """Commands that were accepted or running when the daemon last stopped (a crash)."""
        rows = self._db.execute(
            "SELECT result FROM commands WHERE status IN (?, ?) ORDER BY updated",
            (CommandStatus.ACCEPTED.value, CommandStatus.RUNNING.value),
        ).fetchall()
        return [_result_from_json(row[0]) for row in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
