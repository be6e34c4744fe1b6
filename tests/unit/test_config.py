from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rackd.config import Config, DeviceKind, load_config
from rackd.errors import ConfigError
from rackd.testing.fake_driver import FakeOptions

MINIMAL = """
[site]
name = "aus1"
"""

RACK = """
[site]
name = "aus1"
[daemon]
state_dir = "/tmp/x"
[defaults]
poll_interval = 15
[[pdu]]
id = "pdu-a1"
rack = "r12"
driver = "fake"
host = "pdu-a1"
targets = ["1", "2"]
[[node]]
id = "gpu-01"
rack = "r12"
outlets = ["pdu-a1:1"]
poll_interval = 5
bmc = { driver = "fake", host = "bmc-01", username = "admin" }
console = { url = "rfc2217://127.0.0.1:7001" }
"""


def issues_of(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {issue.path: issue.message for issue in exc.value.issues}


def test_minimal_config_has_defaults(load: Callable[[str], Config]) -> None:
    config = load(MINIMAL)
    assert config.site == "aus1"
    assert config.settings.mqtt.port == 1883
    assert config.devices == ()


def test_rack_config_resolves_devices_with_driver_options(load: Callable[[str], Config]) -> None:
    config = load(RACK)
    node = config.device("gpu-01")
    assert node.kind is DeviceKind.NODE
    assert node.role == "bmc"
    assert node.poll_interval == 5
    assert isinstance(node.options, FakeOptions)
    assert node.options.host == "bmc-01"
    assert node.outlets == ("pdu-a1:1",)
    pdu = config.device("pdu-a1")
    assert pdu.poll_interval == 15  # from [defaults]
    assert isinstance(pdu.options, FakeOptions)
    assert pdu.options.targets == ["1", "2"]


def test_unknown_key_names_path_and_expected_keys(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace("poll_interval = 5", "poll_intervall = 5"))
    issues = issues_of(exc)
    assert "node[0].poll_intervall" in issues
    assert "unknown key" in issues["node[0].poll_intervall"]
    assert "poll_interval" in issues["node[0].poll_intervall"]


def test_unknown_driver_option_is_reported_by_the_driver_model(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace('host = "bmc-01"', 'hots = "bmc-01"'))
    assert "node[0].bmc.hots" in issues_of(exc)
    assert "unknown key" in issues_of(exc)["node[0].bmc.hots"]


def test_wrong_type_names_path_and_value(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace("poll_interval = 15", 'poll_interval = "fast"'))
    message = issues_of(exc)["defaults.poll_interval"]
    assert "valid number" in message
    assert "'fast'" in message


def test_error_names_the_file(write_config: Callable[[str], Path]) -> None:
    path = write_config(RACK.replace("poll_interval = 15", "poll_interval = -1"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: defaults.poll_interval:")


def test_missing_secret_file(load: Callable[[str], Config], tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "bmc-password"
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace('username = "admin"', f'username = "admin", password = {{ file = "{missing}" }}'))
    message = issues_of(exc)["node[0].bmc.password"]
    assert "no such file" in message
    assert str(missing) in message


def test_duplicate_device_id(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace('id = "gpu-01"', 'id = "pdu-a1"'))
    assert "duplicate device id 'pdu-a1'" in issues_of(exc)["pdu[0].id"]


def test_outlet_referencing_unknown_pdu(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace('"pdu-a1:1"', '"pdu-b9:1"'))
    message = issues_of(exc)["node[0].outlets[0]"]
    assert "unknown PDU 'pdu-b9'" in message
    assert "pdu-a1" in message  # names the PDUs that do exist


def test_several_errors_are_reported_at_once(load: Callable[[str], Config]) -> None:
    broken = (
        RACK.replace('name = "aus1"', 'name = "aus/1"')
        .replace('"pdu-a1:1"', '"pdu-b9:1"')
        .replace('host = "bmc-01"', "host = 7")
        .replace("[daemon]", "[daemon]\nbogus = true")
    )
    with pytest.raises(ConfigError) as exc:
        load(broken)
    assert {"site.name", "node[0].outlets[0]", "node[0].bmc.host", "daemon.bogus"} <= set(issues_of(exc))


def test_invalid_toml_reports_line(load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as exc:
        load("[site]\nname = \n")
    assert "invalid TOML" in str(exc.value)
    assert "line 2" in str(exc.value)


def test_environment_overrides_the_file(load: Callable[[str], Config], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RACKD_MQTT__URL", "mqtts://broker.example:8884")
    monkeypatch.setenv("RACKD_DEFAULTS__CALL_TIMEOUT", "4.5")
    config = load(RACK)
    assert config.settings.mqtt.tls
    assert config.settings.mqtt.port == 8884
    assert config.device("gpu-01").call_timeout == 4.5


def test_bad_environment_override_is_attributed_to_the_variable(
    load: Callable[[str], Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RACKD_MQTT__URL", "ftp://nope")
    with pytest.raises(ConfigError) as exc:
        load(RACK)
    (issue,) = exc.value.issues
    assert issue.source == "environment RACKD_MQTT__URL"
    assert issue.path == "mqtt.url"


def test_secret_value_never_appears_in_errors_or_reprs(
    load: Callable[[str], Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BMC_PW", "hunter2-very-secret")
    config = load(RACK.replace('username = "admin"', 'username = "admin", password = { env = "BMC_PW" }'))
    options = config.device("gpu-01").options
    assert isinstance(options, FakeOptions)
    assert options.password is not None
    assert options.password.reveal() == "hunter2-very-secret"
    assert "hunter2" not in repr(config)
    assert "hunter2" not in options.model_dump_json()
    # A secret typed where a number belongs is not echoed back in the error.
    with pytest.raises(ConfigError) as exc:
        load(RACK.replace("[daemon]", "[mqtt]\npassword = 12345678\n[daemon]"))
    assert "12345678" not in str(exc.value)


def test_inline_secret_is_a_warning(load: Callable[[str], Config]) -> None:
    config = load(RACK.replace('username = "admin"', 'username = "admin", password = "pw"'))
    assert [w.path for w in config.warnings] == ["node[0].bmc.password"]


def test_driver_warnings_are_reported_with_key_paths(load: Callable[[str], Config], tmp_path: Path) -> None:
    (tmp_path / "community").write_text("private\n")
    config = load(
        f"""
        [site]
        name = "lab"
        [[pdu]]
        id = "pdu-a1"
        rack = "r1"
        driver = "snmp"
        host = "127.0.0.1"
        snmp = {{ version = "2c", community = {{ file = "{tmp_path}/community" }} }}
        """
    )
    (warning,) = config.warnings
    assert warning.path == "pdu[0].snmp.version"
    assert "clear text" in warning.message


def test_console_secrets_are_checked_and_inline_ones_flagged(load: Callable[[str], Config], tmp_path: Path) -> None:
    base = '[site]\nname = "lab"\n[[node]]\nid = "n1"\nrack = "r1"\n'
    with pytest.raises(ConfigError) as exc:
        load(base + f'console = {{ url = "ssh://op@127.0.0.1:2222", password = {{ file = "{tmp_path}/none" }} }}\n')
    assert "no such file" in issues_of(exc)["node[0].console.password"]
    config = load(base + 'console = { url = "ssh://op@127.0.0.1:2222", password = "pw" }\n')
    assert [w.path for w in config.warnings] == ["node[0].console.password"]
