"""Pattern events: console lines matched against regexes (defaults: panics, GPU Xid, login prompt), rate-limited."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rackd.console.config import PatternConfig
from rackd.model import Severity
from rackd.runtime.clock import Clock

DEFAULT_PATTERNS: tuple[PatternConfig, ...] = (
    PatternConfig(name="kernel_panic", regex=r"Kernel panic - not syncing", severity=Severity.CRITICAL),
    PatternConfig(
        name="kernel_oops",
        regex=r"\bOops: |\bBUG: unable to handle|\bBUG: kernel NULL pointer dereference",
        severity=Severity.CRITICAL,
    ),
    PatternConfig(name="soft_lockup", regex=r"\bBUG: soft lockup - CPU#\d+ stuck", severity=Severity.CRITICAL),
    PatternConfig(name="hung_task", regex=r"\bINFO: task \S+ blocked for more than \d+ seconds"),
    PatternConfig(
        name="machine_check",
        regex=r"\[Hardware Error\]|Machine check events logged|\bMachine Check Exception\b|\bmce: .*(?:error|panic)",
        severity=Severity.CRITICAL,
    ),
    PatternConfig(name="oom_killer", regex=r"invoked oom-killer|Out of memory: Kill(?:ed)? process"),
    PatternConfig(name="nvidia_xid", regex=r"NVRM: Xid \([^)]*\): \d+", severity=Severity.CRITICAL),
    PatternConfig(name="login_prompt", regex=r"^\S+ login: ?$", severity=Severity.INFO, partial=True),
)

MAX_LINE = 4096  # longer lines are matched on their first 4 KiB: a flood without newlines costs bounded memory
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """A line that matched, the lines before it, and how many matches of the pattern were held back since."""

    name: str
    severity: Severity
    line: str
    context: tuple[str, ...]
    suppressed: int


def clean_line(raw: bytes) -> str:
    """A console line as text for matching: decoded, escape sequences and carriage returns removed."""
    text = raw.decode("utf-8", "replace")
    # A bare carriage return overwrites the line on a terminal: what is left visible is what counts.
    text = text.rstrip("\r").rsplit("\r", 1)[-1]
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return text.replace("\x00", "") if "\x00" in text else text


_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def _any_of(regexes: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One regex matching wherever any of `regexes` matches; None if they cannot be combined (inline flags)."""
    if not regexes:
        return None
    if any(_BACKREFERENCE.search(rx.pattern) for rx in regexes):
        return None  # group numbers shift once combined: a backreference would point at another pattern's group
    try:
        return re.compile("|".join(f"(?:{rx.pattern})" for rx in regexes))
    except re.error:
        return None


class PatternDetector:
    """Feeds on console bytes; yields matches, at most one per pattern per `interval` seconds."""

    def __init__(self, patterns: Iterable[PatternConfig], context_lines: int, interval: float, clock: Clock) -> None:
        """Compile the patterns."""
        self._patterns = [(p, re.compile(p.regex)) for p in patterns]
        self._partial_patterns = [(p, rx) for p, rx in self._patterns if p.partial]
        self._any = _any_of([rx for _, rx in self._patterns])
        self._context: deque[str] = deque(maxlen=context_lines)
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}
        self._line = bytearray()
        self._fired_on_partial: set[str] = set()

    def feed(self, data: bytes) -> list[PatternMatch]:
        """Matches completed by `data` (and by the unfinished line it leaves, for partial patterns)."""
        matches: list[PatternMatch] = []
        pieces = data.split(b"\n")
        for piece in pieces[:-1]:
            self._extend(piece)
            line = clean_line(bytes(self._line))
            self._line.clear()
            # Most console lines match nothing: one combined search first, each pattern only on a hit.
            if self._any is None or self._any.search(line):
                for pattern, regex in self._patterns:
                    if pattern.name not in self._fired_on_partial and regex.search(line):
                        self._fire(pattern, line, matches)
            self._fired_on_partial.clear()
            if line.strip():
                self._context.append(line)
        self._extend(pieces[-1])
        if self._partial_patterns and self._line:
            line = clean_line(bytes(self._line))
            for pattern, regex in self._partial_patterns:
                if pattern.name not in self._fired_on_partial and regex.search(line):
                    self._fired_on_partial.add(pattern.name)
                    self._fire(pattern, line, matches)
        return matches

    def _extend(self, piece: bytes) -> None:
        room = MAX_LINE - len(self._line)
        if room > 0:
            self._line += piece[:room]

    def _fire(self, pattern: PatternConfig, line: str, matches: list[PatternMatch]) -> None:
        now = self._clock.monotonic()
        last = self._last.get(pattern.name)
        if last is not None and now - last < self._interval:
            self._held_back[pattern.name] = self._held_back.get(pattern.name, 0) + 1
            return
        self._last[pattern.name] = now
        suppressed = self._held_back.pop(pattern.name, 0)
        matches.append(PatternMatch(pattern.name, pattern.severity, line, tuple(self._context), suppressed))
