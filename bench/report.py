"""A results table: rows of figures plus the machine, written as Markdown and JSON under bench/results/."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import describe

RESULTS = Path(__file__).parent / "results"


def arguments(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark shares: --quick (tiny N, seconds) and --out (where the table goes)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny fleet, a few seconds: proves the script works")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for NAME.md and NAME.json")
    return parser


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if value is None:
        return "-"
    return str(value)


@dataclass
class Table:
    """One benchmark's results: named columns, rows, free-text notes; the machine is added when written."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quick: bool = False

    def add(self, **row: Any) -> None:
        """One row; keys must be among `columns` (missing ones print as -)."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.name}: unknown columns {sorted(unknown)}")
        self.rows.append(row)

    def markdown(self, machine: dict[str, Any], started: str) -> str:
        """The table as Markdown, with the machine and notes below it."""
        lines = [f"### {self.title}{' (quick mode)' if self.quick else ''}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(_cell(row.get(c)) for c in self.columns) + " |" for row in self.rows)
        lines.append("")
        lines.extend(f"- {note}" for note in self.notes)
        tools = ", ".join(f"{k} {v}" for k, v in machine["tools"].items())
        packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
        lines.extend(
            [
                (
                    f"- Measured {started} on {machine['nproc']} x {machine['cpu_model']}, "
                    f"{machine['memory_gib']} GiB, "
                    f"Linux {machine['kernel']}, Python {machine['python']}; load average at start "
                    f"{machine['load_average_at_start']}."
                ),
                f"- Packages: {packages}.",
                f"- Tools: {tools}.",
                "",
            ]
        )
        return "\n".join(lines)

    def write(self, out: Path) -> Path:
        """Write NAME.md and NAME.json into `out`; returns the JSON path."""
        out.mkdir(parents=True, exist_ok=True)
        machine = describe()
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        document = {
            "name": self.name,
            "title": self.title,
            "quick": self.quick,
            "measured_at": started,
            "machine": machine,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
        }
        path = out / f"{self.name}.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        (out / f"{self.name}.md").write_text(self.markdown(machine, started), encoding="utf-8")
        print(self.markdown(machine, started))
        return path
