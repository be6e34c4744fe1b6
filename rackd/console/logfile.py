"""One console's log file: every byte with per-line UTC timestamps, marker lines, lossless rotation, reopen."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

from rackd.console.logformat import BREAK_MARK, DATA, MARK
from rackd.runtime.clock import Clock

log = structlog.get_logger(__name__)

FILE_MODE = 0o640


class ConsoleLog:
    """Appends console output unchanged (see logformat); never truncates a file, only renames it away."""

    def __init__(self, path: Path, clock: Clock, timestamp_format: str, rotate_bytes: int, rotate_keep: int) -> None:
        """Nothing is opened until the first write."""
        self.path = path
        self._clock = clock
        self._format = timestamp_format
        self._rotate_bytes = rotate_bytes
        # A console line longer than this past the limit is split at rotation (marked with `%`, nothing lost).
        self._rotate_hard = rotate_bytes + min(rotate_bytes // 4, 1 << 20)
        self._keep = rotate_keep
        self._fd: int | None = None
        self._size = 0
        self._mid_line = False  # the file ends inside a console line (no newline yet)
        self._failing = False
        self._rotate_retry_at = 0  # after a failed rotation, the size at which to try again

    # ------------------------------------------------------------------ writing

    def write_device(self, data: bytes) -> None:
        """Console output, exactly as received; each new line starts with a timestamp."""
        if not data:
            return
        self._prepare()
        stamp = self._stamp() + DATA
        out = bytearray()
        pieces = data.split(b"\n")
        last = len(pieces) - 1
        for number, piece in enumerate(pieces):
            if number == last and not piece:
                break  # the data ended with a newline
            if not self._mid_line:
                out += stamp
            out += piece
            if number < last:
                out += b"\n"
                self._mid_line = False
            else:
                self._mid_line = True
        self._write(bytes(out))
        self._maybe_rotate()

    def mark(self, text: str) -> None:
        """A rackd marker line (connect, gap, attach, power action…); it never splits a console line silently."""
        self._write(self._marker(text))
        self._maybe_rotate()

    def _marker(self, text: str) -> bytes:
        self._prepare()
        clean = text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
        if self._mid_line:
            self._mid_line = False
            return b"\n" + self._stamp() + BREAK_MARK + clean + b"\n"
        return self._stamp() + MARK + clean + b"\n"

    def _stamp(self) -> bytes:
        return self._clock.now().strftime(self._format).encode()

    def _write(self, data: bytes) -> None:
        try:
            fd = self._open()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
                self._size += written
        except OSError as exc:
            failure: str | None = exc.strerror or str(exc)
        else:
            failure = None
        if failure is not None:
            if not self._failing:  # logged once per episode, not per chunk of a full disk
                log.error("console_log_write_failed", path=str(self.path), error=failure)
                self._failing = True
        elif self._failing:
            log.info("console_log_write_recovered", path=str(self.path))
            self._failing = False

    # ------------------------------------------------------------------ files

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # the umask must not widen or narrow it
            self._size = os.fstat(fd).st_size
            # A previous run may have stopped inside a console line: the next marker must say it interrupts it.
            self._mid_line = self._size > 0 and os.pread(fd, 1, self._size - 1) != b"\n"
            self._fd = fd
        return self._fd

    def _prepare(self) -> None:
        # Open before composing a write: opening learns whether the file ends inside a console line.
        with contextlib.suppress(OSError):  # _write reports the failure (once) and retries on the next write
            self._open()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _maybe_rotate(self) -> None:
        if self._size < max(self._rotate_bytes, self._rotate_retry_at):
            return
        if self._mid_line and self._size < self._rotate_hard:
            return
        self.rotate()

    def rotate(self) -> None:
        """Rename the file to `.1` (older ones shift up, the oldest beyond `rotate_keep` is removed), start anew."""
        self._write(self._marker(f"log rotated; continues in {self.path.name}"))
        self._close()
        try:
            oldest = self.path.with_name(f"{self.path.name}.{self._keep}")
            oldest.unlink(missing_ok=True)
            for number in range(self._keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                if older.exists():
                    older.rename(self.path.with_name(f"{self.path.name}.{number + 1}"))
            if self.path.exists():
                self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        except OSError as exc:
            failure: str | None = exc.strerror or str(exc)
        else:
            failure = None
        if failure is not None:
            # Appending to the file that is still there loses nothing; the next rotation tries again.
            log.error("console_log_rotate_failed", path=str(self.path), error=failure)
            self._rotate_retry_at = self._size + self._rotate_bytes // 4
            self._write(self._marker(f"log rotation failed ({failure}); continuing in this file"))
            return
        self._rotate_retry_at = 0
        self._write(self._marker(f"log continued from {self.path.name}.1"))

    def reopen(self) -> None:
        """After an external logrotate renamed the file (SIGHUP): finish the old file, continue in a new one."""
        if self._fd is None:
            return
        self._write(self._marker("log reopened (SIGHUP)"))
        self._close()
        self._write(self._marker("log reopened (SIGHUP); earlier output is in the rotated file"))

    def close(self) -> None:
        """Close the file (a later write reopens it)."""
        self._close()
