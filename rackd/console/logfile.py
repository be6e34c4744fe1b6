"""One console's log file: every byte with per-line UTC timestamps, marker lines, lossless rotation, reopen.

When the file cannot be written (disk full, quota, I/O error) the log degrades instead of losing output: what
was composed for the file (its lines already stamped with the time the bytes arrived) is held in memory, up to a
bound, and written in order, unchanged, once the file takes writes again. The file is retried at most every
`RETRY_INTERVAL` seconds, on a write or on `retry()`. Beyond the bound the oldest held output is dropped and a
marker line in its place says how many console bytes were lost and over what time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from rackd.console.logformat import BREAK_MARK, DATA, MARK
from rackd.runtime.clock import Clock

log = structlog.get_logger(__name__)

FILE_MODE = 0o640
NEWLINE = 0x0A

# Held in memory per console while its log cannot be written: 256 KiB of log (console output with its
# timestamps). That is a whole boot log, or a kernel panic with its trace many times over, and about 20 s of a
# 115200-baud console printing flat out; a mostly idle console holds hours of a disk-full episode. It is memory
# the daemon may need for every console at once (a full disk fails them all together): 500 consoles flooding
# through the whole episode hold at most 128 MiB, on top of their ring buffers. Beyond it the oldest held output
# is dropped first, as the ring buffer and the event spool do.
HOLD_BYTES = 256 << 10
# Held output is kept in blocks of about this size; the oldest whole block is dropped when the bound is passed.
BLOCK_BYTES = 4096
# A failing file is tried again at most this often: a full disk costs one failed write a second, not one per chunk.
RETRY_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Outage:
    """One episode of failed writes, as reported when the held output has all been written."""

    error: str  # the first failure of the episode
    since: dt.datetime
    until: dt.datetime
    lost_bytes: int  # console bytes dropped because the bound was passed
    lost_markers: int  # rackd marker lines dropped with them
    lost_from: dt.datetime | None  # when the first and the last dropped bytes arrived
    lost_to: dt.datetime | None


@dataclass(slots=True)
class _Block:
    """Log bytes waiting for the file, composed as if everything before them had been written."""

    data: bytearray
    head: str  # its first piece: "data" or "mark" (a new line), "continuation" (of a console line), "break" (`%`)
    stamp: bytes  # the timestamp of its first piece
    first: dt.datetime
    last: dt.datetime
    device: int  # console bytes in it
    markers: int  # marker lines in it


@dataclass(slots=True)
class _Loss:
    """Held output dropped: at the gap it leaves (written as a marker), and over a whole episode (reported)."""

    error: str
    first: dt.datetime
    last: dt.datetime
    device: int = 0
    markers: int = 0

    def add(self, block: _Block) -> None:
        self.last = block.last
        self.device += block.device
        self.markers += block.markers


class ConsoleLog:
    """Appends console output unchanged (see logformat); never truncates a file, only renames it away."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        timestamp_format: str,
        rotate_bytes: int,
        rotate_keep: int,
        *,
        hold_bytes: int = HOLD_BYTES,
    ) -> None:
        """Nothing is opened until the first write."""
        self.path = path
        self.logger = log.bind(path=str(path))  # the session binds its node
        self.on_failing: Callable[[str], None] | None = None  # called once per episode, with the error
        self.on_recovered: Callable[[Outage], None] | None = None  # called when everything held is written
        self._clock = clock
        self._format = timestamp_format
        self._rotate_bytes = rotate_bytes
        # A console line longer than this past the limit is split at rotation (marked with `%`, nothing lost).
        self._rotate_hard = rotate_bytes + min(rotate_bytes // 4, 1 << 20)
        self._keep = rotate_keep
        self._hold_bytes = hold_bytes
        self._fd: int | None = None
        self._size = 0
        self._mid_line = False  # the log, as composed so far, ends inside a console line (no newline yet)
        self._file_mid_line = False  # the file itself does (it lags behind while output is held)
        self._rotate_retry_at = 0  # after a failed rotation, the size at which to try again
        # Output not yet in the file, oldest first: the rest of a piece the file took only part of (it goes next,
        # never dropped: the file already has its beginning), a gap left by dropped output, then held blocks.
        self._pinned = memoryview(b"")
        self._gap: _Loss | None = None
        self._held: deque[_Block] = deque()
        self._held_bytes = 0
        self._failure: str | None = None  # the error of the episode in progress
        self._failed_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._retry_at = 0.0
        self._lost: _Loss | None = None  # dropped during the episode in progress
        self._reopen_wanted = False

    @property
    def failing(self) -> bool:
        """The file refuses writes: output is held in memory."""
        return self._failure is not None

    @property
    def hold_limit(self) -> int:
        """How many bytes of log are held in memory at most while the file refuses writes."""
        return self._hold_bytes

    @property
    def held_bytes(self) -> int:
        """Bytes of log waiting in memory for the file."""
        return len(self._pinned) + self._held_bytes

    # ------------------------------------------------------------------ writing

    def write_device(self, data: bytes) -> None:
        """Console output, exactly as received; each new line starts with a timestamp."""
        if not data:
            return
        self._prepare()
        now = self._clock.now()
        stamp = self._stamp(now)
        head = "continuation" if self._mid_line else "data"
        out = bytearray()
        pieces = data.split(b"\n")
        last = len(pieces) - 1
        for number, piece in enumerate(pieces):
            if number == last and not piece:
                break  # the data ended with a newline
            if not self._mid_line:
                out += stamp + DATA
            out += piece
            if number < last:
                out += b"\n"
                self._mid_line = False
            else:
                self._mid_line = True
        self._write(_Block(out, head, stamp, now, now, len(data), 0))
        self._maybe_rotate()

    def mark(self, text: str) -> None:
        """A rackd marker line (connect, gap, attach, power action…); it never splits a console line silently."""
        self._write(self._marker(text))
        self._maybe_rotate()

    def retry(self) -> None:
        """Try the file again if output is held and the last attempt is `RETRY_INTERVAL` old (the session calls it)."""
        if self._pending():
            self._attempt(force=False)
            self._maybe_rotate()

    def _marker(self, text: str) -> _Block:
        self._prepare()
        now = self._clock.now()
        stamp = self._stamp(now)
        clean = text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
        if self._mid_line:
            self._mid_line = False
            return _Block(bytearray(b"\n" + stamp + BREAK_MARK + clean + b"\n"), "break", stamp, now, now, 0, 1)
        return _Block(bytearray(stamp + MARK + clean + b"\n"), "mark", stamp, now, now, 0, 1)

    def _stamp(self, when: dt.datetime) -> bytes:
        return when.strftime(self._format).encode()

    def _pending(self) -> bool:
        return bool(self._pinned) or self._gap is not None or bool(self._held)

    def _write(self, block: _Block) -> None:
        self._hold(block)
        self._attempt(force=False)

    def _hold(self, block: _Block) -> None:
        last = self._held[-1] if self._held else None
        if last is not None and len(last.data) + len(block.data) <= BLOCK_BYTES:
            last.data += block.data
            last.last = block.last
            last.device += block.device
            last.markers += block.markers
        else:
            self._held.append(block)
        self._held_bytes += len(block.data)

    def _attempt(self, force: bool) -> None:
        """Write what is held, unless the file failed less than RETRY_INTERVAL ago; degrade or recover."""
        if self._failure is not None and not force and self._clock.monotonic() < self._retry_at:
            self._trim()
            return
        try:
            self._flush()
        except OSError as exc:
            self._failed(exc.strerror or str(exc))
            self._trim()
            return
        self._mid_line = self._file_mid_line  # a gap marker or a fitted block may have ended a line
        if self._failure is not None:
            self._recovered()
        if self._reopen_wanted:
            self._reopen_wanted = False
            self.reopen()

    def _flush(self) -> None:
        """Write everything held, oldest first; OSError when the file refuses (the rest stays held)."""
        fd = self._open()
        while True:
            if not self._pinned:
                if self._gap is not None:
                    gap, self._gap = self._gap, None
                    self._pinned = memoryview(self._gap_marker(gap))
                elif self._held:
                    block = self._held.popleft()
                    self._held_bytes -= len(block.data)
                    self._pinned = memoryview(self._fitted(block))
                else:
                    return
            # A short write (the disk filled mid-buffer) is accounted for: only the rest is written next time.
            written = os.write(fd, self._pinned)
            if written > 0:
                self._size += written
                self._file_mid_line = self._pinned[written - 1] != NEWLINE
                self._pinned = self._pinned[written:]

    def _fitted(self, block: _Block) -> bytes | bytearray:
        """The block's bytes, made to follow what the file really ends with (after a gap, or in a new file)."""
        data, stamp = block.data, block.stamp
        if self._file_mid_line:
            if block.head == "mark":  # `T # text` must interrupt the unfinished console line: `\nT % text`
                return b"\n" + stamp + BREAK_MARK + data[len(stamp) + len(MARK) :]
            if block.head == "data":
                note = b"log resumed after a write failure"
                return b"\n" + stamp + BREAK_MARK + note + b"\n" + data
            return data
        if block.head == "continuation":  # its line began in output that was dropped: it gets its own stamp
            return stamp + DATA + data
        if block.head == "break":  # no console line to interrupt any more: `\nT % text` becomes `T # text`
            return stamp + MARK + data[1 + len(stamp) + len(BREAK_MARK) :]
        return data

    def _gap_marker(self, gap: _Loss) -> bytes:
        first, last = gap.first.strftime(self._format), gap.last.strftime(self._format)
        text = f"{gap.device} bytes not logged: {gap.error} from {first} to {last}"
        if gap.markers:
            text += f" (and {gap.markers} rackd marker lines)"
        stamp = self._stamp(gap.last)  # in time order: after what was written before it, before what follows
        clean = text.encode("utf-8", "replace")
        if self._file_mid_line:
            return b"\n" + stamp + BREAK_MARK + clean + b"\n"
        return stamp + MARK + clean + b"\n"

    def _trim(self) -> None:
        """Past the bound, drop the oldest held blocks (never the rest of a piece the file has begun)."""
        while self._held and len(self._pinned) + self._held_bytes > self._hold_bytes:
            block = self._held.popleft()
            self._held_bytes -= len(block.data)
            error = self._failure or "write failed"
            if self._gap is None:
                self._gap = _Loss(error, block.first, block.last)
            self._gap.add(block)
            if self._lost is None:
                self._lost = _Loss(error, block.first, block.last)
                self.logger.warning(
                    "console_log_output_dropped",
                    error=error,
                    hold_limit_bytes=self._hold_bytes,
                    detail="held output past the limit: the oldest is dropped, a marker will say how much",
                )
            self._lost.add(block)

    def _failed(self, error: str) -> None:
        self._retry_at = self._clock.monotonic() + RETRY_INTERVAL
        if self._failure is not None:
            return  # logged once per episode, not per chunk of a full disk
        self._failure = error
        self._failed_at = self._clock.now()
        self.logger.error(
            "console_log_write_failed",
            error=error,
            hold_limit_bytes=self._hold_bytes,
            retry_s=RETRY_INTERVAL,
            detail="console output is held in memory until the file takes writes again",
        )
        if self.on_failing is not None:
            self._notify(functools.partial(self.on_failing, error))

    def _recovered(self) -> None:
        assert self._failure is not None
        lost = self._lost
        outage = Outage(
            error=self._failure,
            since=self._failed_at,
            until=self._clock.now(),
            lost_bytes=lost.device if lost else 0,
            lost_markers=lost.markers if lost else 0,
            lost_from=lost.first if lost else None,
            lost_to=lost.last if lost else None,
        )
        self._failure = None
        self._lost = None
        level = self.logger.warning if lost else self.logger.info
        level(
            "console_log_write_recovered",
            error=outage.error,
            outage_s=round((outage.until - outage.since).total_seconds(), 3),
            lost_bytes=outage.lost_bytes,
            lost_markers=outage.lost_markers,
        )
        if self.on_recovered is not None:
            self._notify(functools.partial(self.on_recovered, outage))
        # The file itself says why its output came late, and with the times it arrived.
        since, until = outage.since.strftime(self._format), outage.until.strftime(self._format)
        note = f"log writes failed from {since} to {until} ({outage.error}): output held in memory, written late"
        if outage.lost_bytes or outage.lost_markers:
            note += f"; {outage.lost_bytes} bytes not logged (see above)"
        self._write(self._marker(note))  # not mark(): a rotation waits for the next write, never nests in one

    def _notify(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # a listener's bug must not break logging the console
            self.logger.exception("console_log_listener_failed")

    # ------------------------------------------------------------------ files

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)  # the umask must not widen or narrow it
                self._size = os.fstat(fd).st_size
                # A previous run may have stopped inside a console line: the next marker must say it interrupts it.
                self._file_mid_line = self._size > 0 and os.pread(fd, 1, self._size - 1) != b"\n"
            except OSError:
                os.close(fd)
                raise
            if not self._pending():
                self._mid_line = self._file_mid_line
            self._fd = fd
        return self._fd

    def _prepare(self) -> None:
        # Open before composing a write: opening learns whether the file ends inside a console line. While output
        # is held the composed log is ahead of the file, and the retry waits for its time.
        if self._fd is None and not self._pending():
            with contextlib.suppress(OSError):  # _write reports the failure (once) and holds the output
                self._open()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _maybe_rotate(self) -> None:
        if self._pending():
            return  # held output goes into this file first; the rotation waits for it
        if self._size < max(self._rotate_bytes, self._rotate_retry_at):
            return
        if self._mid_line and self._size < self._rotate_hard:
            return
        self.rotate()

    def rotate(self) -> None:
        """Rename the file to `.1` (older ones shift up, the oldest beyond `rotate_keep` is removed), start anew."""
        if self._pending():
            self._attempt(force=True)
            if self._pending():
                return  # the file refuses writes: keep appending to it (when it can), rotate later
        self._write(self._marker(f"log rotated; continues in {self.path.name}"))
        if self._pending():
            return  # the disk filled just now: the marker is held for this file, the rotation comes later
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
            self.logger.error("console_log_rotate_failed", error=failure)
            self._rotate_retry_at = self._size + self._rotate_bytes // 4
            self._write(self._marker(f"log rotation failed ({failure}); continuing in this file"))
            return
        self._rotate_retry_at = 0
        self._write(self._marker(f"log continued from {self.path.name}.1"))

    def reopen(self) -> None:
        """After an external logrotate renamed the file (SIGHUP): finish the old file, continue in a new one."""
        if self._fd is None:
            return
        if self._pending():
            self._attempt(force=True)  # held output is older than the rename: it belongs in the old file
            if self._pending():
                # Held output (a line the file has begun, maybe) must end the old file: reopen once it is written.
                self._reopen_wanted = True
                self.logger.info("console_log_reopen_deferred", held_bytes=self.held_bytes)
                return
        self._write(self._marker("log reopened (SIGHUP)"))
        if self._pending():
            self._reopen_wanted = True
            return
        self._close()
        self._write(self._marker("log reopened (SIGHUP); earlier output is in the rotated file"))

    def close(self) -> None:
        """Write what is held if the file takes it now, close the file (a later write reopens it)."""
        self._reopen_wanted = False  # held output ends the renamed file; the next run starts the new one
        if self._pending():
            self._attempt(force=True)
        if self._pending():
            self.logger.error(
                "console_log_unwritten_at_close",
                error=self._failure,
                held_bytes=self.held_bytes,
                lost_bytes=sum(block.device for block in self._held) + (self._gap.device if self._gap else 0),
            )
            self._pinned = memoryview(b"")
            self._gap = None
            self._held.clear()
            self._held_bytes = 0
            self._failure = None
            self._lost = None
        self._close()
