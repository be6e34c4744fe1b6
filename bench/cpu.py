"""CPU and memory of one process, read so that only rackd's own work is counted (simulators run elsewhere)."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` (all its threads) from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB."""
    pages = int(Path(f"/proc/{pid}/statm").read_text(encoding="utf-8").split()[1])
    return pages * PAGE / 1024 / 1024


def self_cpu() -> float:
    """CPU seconds of this process, every thread included (pyghmi's I/O thread and the executor)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the exec-per-poll peers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Span:
    """Wall and CPU of one measured stretch; `cpu` is read through the function given at start."""

    wall: float = 0.0
    cpu: float = 0.0


class Meter:
    """Measures wall time and a CPU counter over a `with` block."""

    def __init__(self, counter: Callable[[], float] = self_cpu) -> None:
        """`counter` returns CPU seconds (self_cpu, children_cpu, or a lambda over process_cpu(pid))."""
        self._counter = counter
        self.span = Span()
        self._wall0 = 0.0
        self._cpu0 = 0.0

    def _read(self) -> float:
        return self._counter()

    def __enter__(self) -> Span:
        self._wall0 = time.perf_counter()
        self._cpu0 = self._read()
        return self.span

    def __exit__(self, *exc: object) -> None:
        self.span.wall = time.perf_counter() - self._wall0
        self.span.cpu = self._read() - self._cpu0
