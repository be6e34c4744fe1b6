"""Offline checks: profile tables are consistent, names are stable slugs, scales, energy resets, options."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from rackd.model import SLUG_RE, PowerAction, SensorKind
from rackd_snmp.convert import WrongTypeError, scaled, with_decimals
from rackd_snmp.energy import COUNTER_RESET, EnergyCounters
from rackd_snmp.naming import outlet_id, slug
from rackd_snmp.options import SnmpOptions, UsmAuth
from rackd_snmp.profile import Metric
from rackd_snmp.profiles import ALL_PROFILES, PROFILES_BY_NAME, candidates


def test_profile_names_are_unique_and_tables_well_formed() -> None:
    assert len(PROFILES_BY_NAME) == len(ALL_PROFILES)
    for profile in ALL_PROFILES:
        for table in profile.tables:
            for metric in table.metrics:
                name = slug(metric.name, (1, 2, 3, 4), table.unit_part, table.master_unit)
                assert name is not None, (profile.name, metric.name)
                assert SLUG_RE.match(name), (profile.name, metric.name)
        for typed in profile.typed_tables:
            for sensor_type in typed.types.values():
                name = slug(typed.name, (1, 2, 3), typed.unit_part, typed.master_unit, sensor=sensor_type.suffix)
                assert name is not None
                assert SLUG_RE.match(name)
        for outlets in profile.outlets:
            assert set(outlets.commands) == {PowerAction.ON, PowerAction.OFF}, profile.name
            assert outlets.commands[PowerAction.ON] != outlets.commands[PowerAction.OFF]


@pytest.mark.parametrize(
    ("sys_object_id", "first"),
    [
        ("1.3.6.1.4.1.318.1.3.4.6", "apc_rpdu2"),
        ("1.3.6.1.4.1.13742.6", "raritan_pdu2"),
        ("1.3.6.1.4.1.13742.4", "raritan_px1"),
        ("1.3.6.1.4.1.1718.3", "sentry3"),
        ("1.3.6.1.4.1.1718.4", "sentry4"),
        ("1.3.6.1.4.1.534.6.6.7", "eaton_epdu"),
        ("1.3.6.1.4.1.3808.1.1.3", "cyberpower_epdu"),
        ("1.3.6.1.4.1.21239.42.1.53", "vertiv_v5"),
    ],
)
def test_sys_object_id_candidates(sys_object_id: str, first: str) -> None:
    assert candidates(sys_object_id)[0].name == first


def test_unknown_sys_object_id_has_no_candidates() -> None:
    assert candidates("1.3.6.1.4.1.9.1.1") == []
    assert candidates("1.3.6.1.4.1.1718.30") == []  # a prefix match must end at a dot


def test_daisy_chained_units_get_a_prefix_only_off_the_master() -> None:
    assert slug("inlet{1}_l{2}_current", (1, 1, 3), 0, 1) == "inlet1_l3_current"
    assert slug("inlet{1}_l{2}_current", (2, 1, 3), 0, 1) == "unit2_inlet1_l3_current"
    assert slug("outlet{1}_current", (0, 7), 0, 0) == "outlet7_current"  # Eaton: strapping index 0 = master
    assert slug("outlet{2}_current", (1, 7), 0, 1) is None  # index too short for the template
    assert outlet_id((0, 7), 0, 0) == "7"
    assert outlet_id((3, 1, 7), 0, 1) == "3.7"


def test_scales_and_not_available() -> None:
    tenths = Metric(5, SensorKind.CURRENT, "x", scale=0.1)
    assert scaled(tenths, 13) == 1.3
    assert scaled(tenths, -1) is None
    assert scaled(tenths, None) is None
    eaton = Metric(3, SensorKind.VOLTAGE, "x", scale=0.001, negative_is_missing=True)
    assert scaled(eaton, -5) is None
    assert scaled(eaton, 118450) == 118.45
    signed_pf = Metric(7, SensorKind.POWER_FACTOR, "x", scale=0.001, magnitude=True)
    assert scaled(signed_pf, -946) == 0.946
    assert with_decimals(680, 3) == 0.68
    with pytest.raises(WrongTypeError):
        scaled(tenths, "garbage")


def test_energy_counter_resets_are_flagged() -> None:
    counters = EnergyCounters()
    assert counters.flags("total_energy", 1000.0) == ()
    assert counters.flags("total_energy", 1500.0) == ()
    assert counters.flags("total_energy", 20.0) == (COUNTER_RESET,)
    assert counters.flags("total_energy", 40.0) == ()
    assert counters.flags("total_energy", None) == ()


def test_options_validate_versions_profiles_and_extra_keys() -> None:
    v2 = SnmpOptions.model_validate({"host": "pdu", "snmp": {"version": "2c", "community": "topsecret"}})
    assert v2.port == 161
    assert v2.retries == 1
    assert "topsecret" not in repr(v2)
    v3 = SnmpOptions.model_validate(
        {"host": "pdu", "snmp": {"version": "3", "user": "ops", "auth_key": "a" * 8, "priv_key": "p" * 8,
                                 "auth_protocol": "SHA-256"}}
    )
    assert isinstance(v3.snmp, UsmAuth)
    assert "aaaaaaaa" not in repr(v3)
    with pytest.raises(ValidationError):
        SnmpOptions.model_validate({"host": "pdu", "snmp": {"version": "3", "user": "ops"}})  # authPriv only
    with pytest.raises(ValidationError):
        SnmpOptions.model_validate({"host": "pdu", "profile": "nope", "snmp": {"version": "1", "community": "c"}})
    with pytest.raises(ValidationError):
        SnmpOptions.model_validate({"host": "pdu", "bogus": 1, "snmp": {"version": "1", "community": "c"}})


COMMON_DEVICE_KEYS = {"id", "rack", "driver", "protected", "tags", "poll_interval", "call_timeout"}


def test_sample_config_pdu_tables_validate() -> None:
    sample = tomllib.loads((Path(__file__).parents[1] / "sample.toml").read_text(encoding="utf-8"))
    for table in sample["pdu"]:
        options = SnmpOptions.model_validate({k: v for k, v in table.items() if k not in COMMON_DEVICE_KEYS})
        assert options.host
