"""The rack spec: the shipped rack is what the docs say, and broken specs are refused with the key named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rackd_sim.rack.spec import SpecError, load_spec, parse_spec


def test_the_default_rack_is_a_dual_fed_inference_rack() -> None:
    spec = load_spec()
    assert {pdu.feed for pdu in spec.pdus} == {"A", "B"}
    gpu_servers = [s for s in spec.servers if s.bmc]
    assert len(gpu_servers) == 6
    assert sum(1 for s in gpu_servers if s.max_w >= 10000) == 4  # the H100 boxes
    for server in spec.servers:
        assert sorted(pdu for pdu, _ in server.outlets) == ["pdu-a1", "pdu-b1"], server.id  # one PSU per feed
    assert all(s.protected for s in spec.servers if not s.bmc)  # switch and console server
    assert spec.power_budget_w is not None
    assert sum(s.idle_w for s in spec.servers) < spec.power_budget_w < sum(s.max_w for s in spec.servers)


def test_the_test_rack_and_the_examples_load() -> None:
    spec = load_spec(Path(__file__).with_name("small-rack.toml"))
    assert [s.id for s in spec.servers] == ["gpu-01", "gpu-02", "leaf-01"]
    laptop = load_spec(Path(__file__).resolve().parents[2] / "examples" / "laptop-rack.toml")
    assert {pdu.feed for pdu in laptop.pdus} == {"A", "B"}


def minimal(**server: object) -> dict[str, object]:
    return {
        "pdu": [{"id": "p1", "feed": "A", "outlets": 4}],
        "server": [{"id": "s1", "outlets": ["p1:1"], **server}],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (minimal(colour="red"), "server[0]: unknown key(s) colour"),
        (minimal(outlets=["p1:9"]), "p1 has outlets 1..4, not 9"),
        (minimal(outlets=["p9:1"]), "must be PDU:N naming one of p1"),
        (minimal(outlets=[]), "a server needs at least one outlet"),
        ({**minimal(), "pdu": [{"id": "p1", "feed": "A", "vendor": "acme"}]}, "pdu[0].vendor: 'acme'"),
        ({**minimal(), "rack": {"budget": 1}}, "rack: unknown key(s) budget"),
    ],
)
def test_a_broken_spec_is_refused_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(data)


def test_an_outlet_feeds_one_server_only() -> None:
    data = minimal()
    data["server"] = [{"id": "s1", "outlets": ["p1:1"]}, {"id": "s2", "outlets": ["p1:1"]}]
    with pytest.raises(SpecError, match="already feeds s1"):
        parse_spec(data)
