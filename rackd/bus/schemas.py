"""Writes the JSON Schemas of the wire payloads into docs/schemas/ (`python -m rackd.bus.schemas DIR`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rackd.bus.codec import json_schemas


def render(name: str) -> str:
    """The schema file text for one payload."""
    return json.dumps(json_schemas()[name], indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    """(Re)write every schema file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in json_schemas():
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        sys.stdout.write(f"{written_path}\n")
