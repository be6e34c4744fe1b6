"""The shipped systemd files: unit verified offline, exposure score, sysusers/tmpfiles, the example config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rackd.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "rackd.service"
INSTALLED_RACKD = "/opt/rackd/bin/rackd"  # where docs/operations.md installs it
SCORE_RE = re.compile(r"Overall exposure level for rackd\.service: (\d+\.\d+)")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package: systemd; scripts/bootstrap installs it)",
)


def unit_settings() -> dict[str, list[str]]:
    """KEY -> values of the [Service] section (repeated keys keep every value)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def runnable_unit(tmp_path: Path, text: str | None = None) -> Path:
    # `systemd-analyze verify` fails when an Exec binary does not exist, and /opt/rackd is not installed on a
    # test machine: a copy of the unit points at this venv's `rackd` instead (same name, so same unit name).
    rackd = Path(sys.executable).with_name("rackd")
    if not rackd.exists():
        pytest.skip(f"no rackd entry point next to {sys.executable} (pip install -e .)")
    unit = tmp_path / "rackd.service"
    unit.write_text((text or UNIT.read_text()).replace(INSTALLED_RACKD, str(rackd)))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False)


@needs_systemd_analyze
def test_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    # verify exits 0 even for unknown keys or bad values, which it only prints: stderr must be empty.
    result = analyze("verify", str(runnable_unit(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd_analyze
def test_verify_reports_a_bad_key_on_stderr(tmp_path: Path) -> None:
    # The check above is only worth something if warnings do show up there.
    broken = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSec=thirty\nFooBar=1")
    result = analyze("verify", str(runnable_unit(tmp_path, broken)))
    assert "FooBar" in result.stderr
    assert "thirty" in result.stderr


@needs_systemd_analyze
def test_exposure_score_is_no_worse_than_documented(tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", str(runnable_unit(tmp_path)))
    found = SCORE_RE.search(result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    documented = SCORE_RE.search((ROOT / "docs" / "operations.md").read_text())
    assert documented is not None, "docs/operations.md must record the score"
    assert float(found.group(1)) <= float(documented.group(1))


def test_unit_contract() -> None:
    service = unit_settings()
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == [f"{INSTALLED_RACKD} run -c /etc/rackd/rackd.toml"]
    assert service["ExecStartPre"] == [f"{INSTALLED_RACKD} check-config -c /etc/rackd/rackd.toml"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["CapabilityBoundingSet"] == [""]
    # SIGTERM may take the grace for in-flight actions, polls and logouts in turn: 3 x grace plus margin.
    example = tomllib.loads((SYSTEMD / "rackd.example.toml").read_text())
    grace = example["daemon"]["shutdown_grace"]
    assert float(service["TimeoutStopSec"][0]) > 3 * grace
    # The paths the unit creates are the ones the example config uses.
    daemon = example["daemon"]
    assert daemon["state_dir"] == "/var/lib/" + service["StateDirectory"][0]
    assert daemon["console_log_dir"] in {"/var/log/" + d for d in service["LogsDirectory"][0].split()}
    assert Path(daemon["control_socket"]).parent == Path("/run") / service["RuntimeDirectory"][0]


def test_example_config_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped file stays realistic (every secret is a systemd credential); the test plays systemd's part
    # by handing it a credentials directory with one file per name.
    text = (SYSTEMD / "rackd.example.toml").read_text()
    names = set(re.findall(r'credential = "([^"]+)"', text))
    assert "mqtt" in names
    for name in names:
        (tmp_path / name).write_text(f"not-a-real-{name}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(SYSTEMD / "rackd.example.toml")
    assert {spec.driver for spec in config.devices} == {"ipmi", "snmp"}
    # No secret written into the file (the one expected warning is pdu-b1's clear-text v2c community).
    assert not [w for w in config.warnings if "inline" in w.message], config.warnings
    # The credential the unit loads itself is one the example uses; the rest go in a drop-in.
    loaded = {value.split(":", 1)[0] for value in unit_settings()["LoadCredential"]}
    assert loaded <= names


def test_check_config_command_accepts_the_example(tmp_path: Path) -> None:
    text = (SYSTEMD / "rackd.example.toml").read_text()
    for name in set(re.findall(r'credential = "([^"]+)"', text)):
        (tmp_path / name).write_text("x\n")
    env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "rackd", "check-config", "-c", str(SYSTEMD / "rackd.example.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (site aus1: 2 node, 2 pdu)" in result.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed (package systemd)")
def test_sysusers_and_tmpfiles_create_user_and_directories(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).touch()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "rackd.sysusers")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (user,) = [line.split(":") for line in (etc / "passwd").read_text().splitlines() if line.startswith("rackd:")]
    assert user[5:] == ["/var/lib/rackd", "/usr/sbin/nologin"]
    assert int(user[2]) < 1000  # a system user
    (group,) = [line.split(":") for line in (etc / "group").read_text().splitlines() if line.startswith("rackd:")]
    assert group[2] == user[3]
    # tmpfiles resolves `rackd` in the user database under --root, the one sysusers just wrote.
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(SYSTEMD / "rackd.tmpfiles")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (etc / "rackd" / "credentials").stat().st_mode & 0o777 == 0o700
    assert (etc / "rackd").stat().st_mode & 0o777 == 0o750
    assert (etc / "rackd").stat().st_gid == int(group[2])
