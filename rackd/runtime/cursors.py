"""Event-log cursors per device and source, kept in the state dir so a restart resumes where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class CursorStore:
    """A small JSON file, rewritten atomically (temp file, fsync, rename) on every change."""

    def __init__(self, path: Path) -> None:
        """Load the file if it exists; a corrupt file is logged and replaced (the SEL then restarts from now)."""
        self._path = path
        self._cursors: dict[str, str] = {}
        self._failing = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("cursor_file_unreadable", path=str(path), error=str(exc))
            return
        if isinstance(data, dict):
            self._cursors = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    @staticmethod
    def key(device: str, source: str) -> str:
        """The key of one device's source."""
        return f"{device}/{source}"

    def get(self, device: str, source: str) -> str | None:
        """The stored cursor, or None on first contact."""
        return self._cursors.get(self.key(device, source))

    def set(self, device: str, source: str, cursor: str | None) -> None:
        """Store a cursor (no write when unchanged)."""
        key = self.key(device, source)
        if cursor is None or self._cursors.get(key) == cursor:
            return
        self._cursors[key] = cursor
        try:
            self._write()
        except OSError as exc:
            # Disk full: keep the cursor in memory (a restart may replay a few records, never lose one).
            if not self._failing:
                log.error("cursor_write_failed", path=str(self._path), error=str(exc))  # noqa: TRY400 - no traceback
            self._failing = True
        else:
            if self._failing:
                log.warning("cursor_write_recovered", path=str(self._path))
            self._failing = False

    def _write(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(self._cursors, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self._path)
