"""The audit log: append-only JSON lines in the state dir — who, from where, what, why, each step, result."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

from rackd.model import utc_now

log = structlog.get_logger(__name__)


class AuditLog:
    """Appends one JSON object per line and fsyncs it; a failing disk is logged, never fatal to the action."""

    def __init__(self, path: Path) -> None:
        """Open the file for appending (mode 0640)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, kind: str, **fields: Any) -> None:
        """Append one record: `{"ts": …, "kind": kind, …fields}`."""
        line = json.dumps({"ts": utc_now().isoformat(), "kind": kind, **fields}, default=str)
        try:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            log.error("audit_write_failed", path=str(self.path), error=str(exc), record=kind)  # noqa: TRY400 - a full disk needs no traceback

    def close(self) -> None:
        """Close the file."""
        self._file.close()
