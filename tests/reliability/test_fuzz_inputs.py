"""Property-based fuzzing of every input boundary of the core: each input is accepted or refused with a clear
reason — never an unexpected exception."""
# ruff: noqa: PT017 - a property test accepts either outcome; when the input is refused it checks the refusal

from __future__ import annotations

import asyncio
import json
import string
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rackd.config import validate_config
from rackd.control.protocol import ControlRequest, ProtocolError, read_message
from rackd.drivers.registry import DriverRegistry
from rackd.errors import ConfigError
from rackd.runtime.intake import parse_request

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
actions = st.sampled_from(["power.cycle", "power.on", "outlet.off", "refresh", "Power!", "", "a" * 70])
requests = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 2, "1", None]), "id": st.text(max_size=140) | st.integers(), "action": actions},
    optional={"args": json_values, "requested_by": json_values, "reason": json_values, "extra": json_values},
)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300) | requests.map(lambda r: json.dumps(r).encode()))
def test_command_payloads_are_parsed_or_refused_with_a_reason(payload: bytes) -> None:
    request, error, raw_id = parse_request(payload)
    if request is None:
        assert error  # every refusal says why
        assert isinstance(raw_id, str)
        assert len(raw_id) <= 128
    else:
        assert error == ""
        assert request.v == 1


def test_pathological_payloads() -> None:
    for payload in (b"[" * 100_000 + b"]" * 100_000, b'{"v":1,"id":"' + b"\xed\xa0\x80" + b'"}', b"\x00" * 70_000):
        request, error, _ = parse_request(payload)
        assert request is None
        assert error


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_control_socket_lines_never_crash_the_reader(data: bytes) -> None:
    async def feed() -> None:
        reader = asyncio.StreamReader(limit=1024)
        reader.feed_data(data)
        reader.feed_eof()
        try:
            message = await read_message(reader)
        except ProtocolError as exc:
            assert str(exc)
            return
        try:
            ControlRequest.model_validate(message)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            assert str(exc)

    asyncio.run(feed())


keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)
config_values = st.recursive(
    json_scalars.filter(lambda v: v is not None),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
base_config: dict[str, Any] = tomllib.loads(
    '[site]\nname = "lab"\n[[node]]\nid = "n1"\nrack = "r1"\nbmc = { driver = "fake" }\n'
    '[[pdu]]\nid = "p1"\nrack = "r1"\ndriver = "fake"\n'
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["site", "daemon", "mqtt", "defaults", "actions", "control", "node", "pdu", "rack", "bogus"]),
    keys,
    config_values,
)
def test_config_files_are_valid_or_refused_with_key_paths(section: str, key: str, value: Any) -> None:
    raw = json.loads(json.dumps(base_config))
    target = raw.setdefault(section, {})
    if isinstance(target, list):
        target[0][key] = value
    else:
        target[key] = value
    try:
        validate_config(raw, "fuzz.toml", DriverRegistry())
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.source == "fuzz.toml" or issue.source.startswith("environment ")
            assert issue.message


@pytest.mark.parametrize("text", ["site = 3", "[[site]]\nname = 'x'", "node = 'gpu'\n[site]\nname='x'"])
def test_a_config_that_is_not_a_table_of_tables(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_config(tomllib.loads(text), "x.toml", DriverRegistry())
    assert exc.value.issues
