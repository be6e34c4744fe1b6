"""Every benchmark script runs in quick mode and writes a well-formed results table (CI proves they still work).

Benchmarks are never timed tests: nothing here checks a figure, only that each script produced its table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# script -> the peer tools it runs side by side with rackd
SCRIPTS = {
    "bmc_polling": ("ipmitool", "ipmi-sensors"),
    "pdu_polling": ("snmpbulkwalk",),
    "publishing": ("mosquitto", "mosquitto_sub"),
    "consoles": ("mosquitto",),
    "site": ("mosquitto", "mosquitto_sub", "mosquitto_pub"),
}


def _missing(tools: tuple[str, ...]) -> list[str]:
    return [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_mode_writes_a_results_table(script: str, tmp_path: Path) -> None:
    missing = _missing(SCRIPTS[script])
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/bootstrap installs them)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    document = json.loads((tmp_path / f"{script}.json").read_text(encoding="utf-8"))
    assert document["name"] == script
    assert document["quick"] is True
    machine = document["machine"]
    assert machine["nproc"] >= 1
    assert {"cpu_model", "memory_gib", "python", "packages", "tools"} <= set(machine)
    assert machine["packages"]["rackd"] != "not installed"
    assert document["rows"], "no rows measured"
    for row in document["rows"]:
        assert set(row) <= set(document["columns"])
        numbers = [v for v in row.values() if isinstance(v, (int, float))]
        assert numbers, row
        assert all(v == v and v >= 0 for v in numbers), row  # no NaN, no negative cost

    markdown = (tmp_path / f"{script}.md").read_text(encoding="utf-8")
    header = "| " + " | ".join(document["columns"]) + " |"
    assert header in markdown
    assert markdown.count("\n|") >= 2 + len(document["rows"])
    assert "Measured" in markdown
