"""The machine and the tool versions a results table was measured with."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("rackd", "pyghmi", "pysnmp", "pyasn1", "aiomqtt", "paho-mqtt", "pydantic", "structlog", "snmpsim")


def _first_line(argv: list[str], pattern: str = "") -> str:
    """The first output line of a tool's version flag (or the first line matching `pattern`)."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    for line in lines:
        if not pattern or re.search(pattern, line):
            return line
    return "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


def describe() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel, Python, package and peer-tool versions, load at the start."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": _load(),
        "packages": packages,
        "tools": {
            "ipmitool": _first_line(["ipmitool", "-V"]),
            "ipmi-sensors (FreeIPMI)": _first_line(["ipmi-sensors", "--version"], "ipmi-sensors"),
            "snmpbulkwalk (net-snmp)": _first_line(["snmpbulkwalk", "--version"]),
            "mosquitto": _first_line(["mosquitto", "-h"], "mosquitto version"),
            "ipmi_sim (OpenIPMI)": _first_line(["ipmi_sim", "--version"]),
        },
    }
