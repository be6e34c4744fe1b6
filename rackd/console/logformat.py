r"""The console log's line format, and reading a log back into the exact bytes the console sent.

Every line of a console log is `TIMESTAMP SEP TEXT\\n` with SEP one of:

- `|`  console output; the newline ending the line is the console's own (when the console sent one);
- `#`  a rackd marker (connect, disconnect, gap, attach, power action, rotation);
- `%`  a rackd marker that interrupted a console line: the newline just before it was added by rackd, so the
       console line continues, unbroken, in the next `|` line.

The last line of a file may be an unfinished console line (no newline yet). Nothing else is ever added to or
removed from the console's bytes, so `device_bytes()` gives back exactly what the console sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DATA = b" | "
MARK = b" # "
BREAK_MARK = b" % "


@dataclass(frozen=True, slots=True)
class LogLine:
    """One parsed line: its timestamp text, kind ('data', 'mark', 'break') and text (newline kept if present)."""

    stamp: bytes
    kind: str
    text: bytes


def parse_lines(content: bytes) -> Iterator[LogLine]:
    """Split a log file's bytes into parsed lines."""
    # Only "\n" ends a line: a console's bare "\r" (progress bars, CRLF) stays inside its line.
    pieces = content.split(b"\n")
    for number, piece in enumerate(pieces):
        if number == len(pieces) - 1 and not piece:
            break
        yield _parse_line(piece + b"\n" if number < len(pieces) - 1 else piece)


def device_bytes(contents: Iterable[bytes]) -> bytes:
    """The console's own bytes from log file contents in order (oldest file first), markers removed."""
    out = bytearray()
    for content in contents:
        for line in parse_lines(content):
            if line.kind == "data":
                out += line.text
            elif line.kind == "break" and out.endswith(b"\n"):
                del out[-1]  # the newline rackd added to end the interrupted console line
    return bytes(out)


def markers(contents: Iterable[bytes]) -> list[str]:
    """The text of every marker line, in order."""
    return [
        line.text.decode("utf-8", "replace").rstrip("\n")
        for content in contents
        for line in parse_lines(content)
        if line.kind != "data"
    ]


def log_files(current: Path) -> list[Path]:
    """A console log and its rotated files, oldest first (`node.log.N` … `node.log.1`, `node.log`)."""
    rotated = []
    for path in current.parent.glob(current.name + ".*"):
        suffix = path.name[len(current.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    return [path for _, path in sorted(rotated, reverse=True)] + ([current] if current.exists() else [])


def _parse_line(raw: bytes) -> LogLine:
    kinds = ((DATA, "data"), (MARK, "mark"), (BREAK_MARK, "break"))
    found = [(raw.find(sep), sep, kind) for sep, kind in kinds if raw.find(sep) >= 0]
    if not found:
        raise ValueError(f"not a console log line: {raw[:80]!r}")
    index, sep, kind = min(found)
    return LogLine(raw[:index], kind, raw[index + len(sep) :])


def output_since(files: Iterable[Path], since: dt.datetime, timestamp_format: str, limit: int) -> bytes:
    """The console's bytes logged at or after `since`, read line by line from the files (oldest first).

    At most the newest `limit` bytes are returned. Lines whose timestamp cannot be parsed are skipped until the
    first line at or after `since`; from there on everything is taken (the log is in time order).
    """
    out = bytearray()
    taking = False
    for path in files:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue  # rotated away while we were reading
        with handle:
            for raw in handle:
                try:
                    line = _parse_line(raw)
                except ValueError:
                    continue
                if not taking:
                    try:
                        stamp = dt.datetime.strptime(line.stamp.decode(), timestamp_format).replace(tzinfo=dt.UTC)
                    except (UnicodeDecodeError, ValueError):
                        continue
                    if stamp < since:
                        continue
                    taking = True
                if line.kind == "data":
                    out += line.text
                elif line.kind == "break" and out.endswith(b"\n"):
                    del out[-1]
                if len(out) > 2 * limit:
                    del out[:-limit]
    return bytes(out[-limit:])
