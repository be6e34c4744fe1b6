"""The headless demo end to end: virtual rack + real mosquitto + `rackd run`, observed on MQTT and the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rackd_sim.fault.cli import send

from rackd.testing.watcher import MqttWatcher, Received, on_topic

from .conftest import HeadlessDemo, pid_alive

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
MANAGED = ("gpu-01", "gpu-02", "pdu-a", "pdu-b")  # devices with a source (the switch has outlets only)


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def port_of(demo: HeadlessDemo) -> int:
    return int(str(demo.ready["broker"]).rsplit(":", 1)[1])


def root(demo: HeadlessDemo) -> str:
    return f"rackd/v1/{demo.ready['site']}/{demo.ready['rack']}"


async def rackd_cli(demo: HeadlessDemo, *args: str) -> tuple[int, str]:
    """Run `rackd ARGS… -c CONFIG` and return its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rackd", *args, "-c", str(demo.config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def inject(demo: HeadlessDemo, target: str, kind: str, value: str | None = None) -> None:
    """`rackd sim fault TARGET KIND [VALUE] --control …` as an operator would type it."""
    args = ["sim", "fault", target, kind, *([value] if value else []), "--control", demo.ready["rack_control"]]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rackd", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()


def rack_status(demo: HeadlessDemo) -> dict[str, Any]:
    return send(demo.ready["rack_control"], {"op": "status"})


async def test_every_device_reports_telemetry_and_state_that_validate(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/#") as watcher:
        for device in MANAGED:
            for kind in ("telemetry", "state"):
                await watcher.wait_for(on_topic(f"{prefix}/{device}/{kind}"), within=60)
        await watcher.wait_for(lambda m: m.topic == f"{prefix}/_rack/telemetry", within=60)
        validators = {
            "telemetry": schema("telemetry"),
            "state": schema("state"),
            "event": schema("event"),
        }
        for message in watcher.messages:
            leaf = message.topic.rsplit("/", 1)[1]
            if message.topic == f"{prefix}/_rack/telemetry":
                jsonschema.validate(message.json(), schema("rack_telemetry"))
            elif message.topic.startswith(f"{prefix}/_rack/"):
                jsonschema.validate(message.json(), schema("rack_event"))
            elif leaf in validators:
                jsonschema.validate(message.json(), validators[leaf])
        states = {m.topic.split("/")[-2]: m.json() for m in watcher.messages if m.topic.endswith("/state")}
    for node in ("gpu-01", "gpu-02"):
        assert states[node]["power"] == {"chassis": "on"}
        assert states[node]["sources"]["bmc"]["availability"] == "up"
        assert states[node]["figures"]["hottest_temp"] > 30
    for pdu in ("pdu-a", "pdu-b"):
        assert states[pdu]["sources"]["pdu"]["availability"] == "up"


async def test_outlets_add_up_to_the_pdu_total_within_metering_tolerance(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    send(headless_demo.ready["rack_control"], {"op": "hold", "value": True})  # steady meters while rackd reads
    try:
        tolerance = {p["id"]: p["metering_tolerance_w"] for p in rack_status(headless_demo)["pdus"]}
        async with MqttWatcher(port_of(headless_demo), f"{prefix}/+/telemetry") as watcher:
            # Two polls of each PDU after the hold: the second is read entirely under steady load.
            for pdu in ("pdu-a", "pdu-b"):
                messages = await watcher.wait_for(on_topic(f"{prefix}/{pdu}/telemetry"), count=2)
                values = {r["sensor"]: r["value"] for r in messages[-1].json()["readings"]}
                outlets = sum(v for k, v in values.items() if re.fullmatch(r"outlet\d+_power", k))
                assert values["total_power"] > 1000
                assert abs(outlets - values["total_power"]) <= tolerance[pdu], (pdu, outlets, values["total_power"])
            # Each dual-PSU server's draw is split over its two feeds.
            rack = await watcher.wait_for(lambda m: m.topic == f"{prefix}/_rack/telemetry")
            assert set(rack[-1].json()["feeds"]) == {"A", "B"}
    finally:
        send(headless_demo.ready["rack_control"], {"op": "hold", "value": False})


def rack_node(message: Received, node: str) -> float | None:
    value: float | None = message.json()["nodes"][node]["outlet_power"]
    return value


async def test_power_cycle_is_verified_shows_a_new_boot_and_rack_totals_dip_and_recover(
    headless_demo: HeadlessDemo,
) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/_rack/telemetry") as watcher:
        await watcher.wait_for(lambda m: (rack_node(m, "gpu-01") or 0) > 2000, within=60)
        status, output = await rackd_cli(headless_demo, "power", "cycle", "gpu-01", "--reason", "test", "--json")
        assert status == 0, output
        (result,) = json.loads(output)
        assert result["status"] == "succeeded", result
        dips = await watcher.wait_for(lambda m: (rack_node(m, "gpu-01") or 9e9) < 100, within=60)
        dip = dips[0]
        after = watcher.messages.index(dip)
        recovered = await watcher.wait_for(
            lambda m: watcher.messages.index(m) > after and (rack_node(m, "gpu-01") or 0) > 2000, within=30
        )
    before = [m for m in watcher.messages[:after] if m.json()["total_power"] is not None]
    assert before, "no rack total before the dip"
    assert dip.json()["total_power"] < before[-1].json()["total_power"] - 2000
    assert recovered[0].json()["total_power"] > dip.json()["total_power"] + 2000
    # The console log shows the boot that followed the cycle: after the action's marker line.
    log_text = await wait_for_console(headless_demo, "gpu-01", "login:")
    assert "Linux version" in log_text
    assert "login:" in log_text


async def wait_for_console(demo: HeadlessDemo, node: str, needle: str, within: float = 30.0) -> str:
    """The node's console log since its last power action started, once that contains `needle`."""
    path = Path(demo.ready["home"]) / "console" / f"{node}.log"
    text = ""
    async with asyncio.timeout(within):
        while needle not in text:
            log_text = path.read_text(errors="replace") if path.exists() else ""
            starts = list(re.finditer(r"action power\.cycle \(\S+\) by .* started", log_text))
            text = log_text[starts[-1].start() :] if starts else ""
            await asyncio.sleep(0.1)  # polling a file the daemon writes, under the deadline above
    return text


async def test_a_server_that_ignores_soft_off_is_escalated_to_hard_off(headless_demo: HeadlessDemo) -> None:
    await inject(headless_demo, "gpu-01", "ignore-soft-off")
    try:
        status, output = await rackd_cli(
            headless_demo, "power", "soft-off", "gpu-01", "--escalate", "--reason", "hung OS", "--json"
        )
        assert status == 0, output
        (result,) = json.loads(output)
        assert result["status"] == "succeeded", result
        steps = " | ".join(step["message"] for step in result["steps"])
        assert "graceful shutdown did not converge" in steps
        assert "observed gpu-01/chassis off" in steps
    finally:
        # Whatever happened, leave gpu-01 fed and on for the next test.
        await rackd_cli(headless_demo, "outlet", "on", "pdu-a:1", "pdu-b:1", "--reason", "cleanup")
        status, output = await rackd_cli(headless_demo, "power", "on", "gpu-01", "--reason", "back to work")
    assert status == 0, output


async def test_bmc_hang_then_escalated_cycle_completes_through_the_pdu_outlets(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/gpu-02/#") as watcher:
        await inject(headless_demo, "gpu-02", "hang")
        status, output = await rackd_cli(
            headless_demo, "power", "cycle", "gpu-02", "--escalate", "--reason", "hung BMC", "--json"
        )
        assert status == 0, output
        (result,) = json.loads(output)
        assert result["status"] == "succeeded", result
        steps = " | ".join(step["message"] for step in result["steps"])
        assert "escalating to PDU outlets" in steps
        assert "observed pdu-a/2 off" in steps
        assert "observed pdu-b/2 on" in steps
        assert result["message"].startswith("via PDU outlets")
        # Mains came back: the BMC booted afresh (no hang) and restored the host's power.
        done = len(watcher.messages)
        await watcher.wait_for(
            lambda m: watcher.messages.index(m) >= done
            and m.topic.endswith("/state")
            and m.json()["sources"]["bmc"]["availability"] == "up"
            and m.json()["power"].get("chassis") == "on",
            within=60,
        )
    server = next(s for s in rack_status(headless_demo)["servers"] if s["id"] == "gpu-02")
    assert server["mains"]
    assert server["power"] == "on"
    assert not server["bmc_faults"]


async def test_gpu_xid_on_a_console_becomes_an_event(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/gpu-01/event") as watcher:
        await inject(headless_demo, "gpu-01", "xid", "79")
        events = await watcher.wait_for(lambda m: m.json()["type"] == "console_pattern", within=60)
    event = events[0].json()
    jsonschema.validate(event, schema("event"))
    assert "Xid" in json.dumps(event), event


async def test_one_outlet_off_loses_redundancy_and_moves_the_draw(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/#") as watcher:
        status, output = await rackd_cli(headless_demo, "outlet", "off", "pdu-a:1", "--reason", "test")
        assert status == 0, output
        try:
            await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/gpu-01/event"
                and m.json()["type"] == "sensor_state_changed"
                and "psu1" in json.dumps(m.json()),
                within=60,
            )
            moved = await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/pdu-b/telemetry"
                and any(r["sensor"] == "outlet1_power" and r["value"] > 2000 for r in m.json()["readings"])
                and any(r["sensor"] == "outlet1_power" for r in m.json()["readings"]),
                within=60,
            )
            assert moved
            server = next(s for s in rack_status(headless_demo)["servers"] if s["id"] == "gpu-01")
            assert server["power"] == "on"
            assert server["feeds_on"] == [False, True]
        finally:
            status, output = await rackd_cli(headless_demo, "outlet", "on", "pdu-a:1", "--reason", "test")
            assert status == 0, output


async def test_a_psu_failure_moves_the_draw_to_the_other_feed(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/#") as watcher:
        # The outlet test before this one fails PSU1 by cutting its feed and restores it just before; inject
        # only once a live poll has seen PSU1 healthy, or its failure is no change to the daemon.
        await watcher.wait_for(
            lambda m: m.topic == f"{prefix}/gpu-01/telemetry"
            and not m.retain
            and any(r["sensor"] == "psu1_status" and r["health"] == "ok" for r in m.json()["readings"]),
            within=60,
        )
        await inject(headless_demo, "gpu-01", "psu-fail", "1")
        try:
            await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/gpu-01/event"
                and m.json()["type"] == "sensor_state_changed"
                and "psu1" in json.dumps(m.json()),
                within=60,
            )
            await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/pdu-a/telemetry"
                and any(r["sensor"] == "outlet1_power" and r["value"] == 0 for r in m.json()["readings"]),
                within=60,
            )
        finally:
            await inject(headless_demo, "gpu-01", "clear")


async def test_a_silent_pdu_is_unreachable_and_the_rack_total_unknown_until_it_answers(
    headless_demo: HeadlessDemo,
) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/#") as watcher:
        await inject(headless_demo, "pdu-b", "timeout")
        try:
            await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/pdu-b/event" and m.json()["type"] == "unreachable", within=30
            )
            await watcher.wait_for(
                lambda m: m.topic == f"{prefix}/_rack/telemetry" and m.json()["total_power"] is None, within=30
            )
        finally:
            await inject(headless_demo, "pdu-b", "clear")
        await watcher.wait_for(
            lambda m: m.topic == f"{prefix}/pdu-b/event" and m.json()["type"] == "recovered", within=30
        )


async def test_both_outlets_off_kill_the_bmc_and_mains_back_restores_the_host(headless_demo: HeadlessDemo) -> None:
    prefix = root(headless_demo)
    async with MqttWatcher(port_of(headless_demo), f"{prefix}/gpu-02/#") as watcher:
        status, output = await rackd_cli(headless_demo, "outlet", "off", "pdu-a:2", "pdu-b:2", "--reason", "test")
        assert status == 0, output
        await watcher.wait_for(lambda m: m.topic.endswith("/event") and m.json()["type"] == "unreachable", within=60)
        server = next(s for s in rack_status(headless_demo)["servers"] if s["id"] == "gpu-02")
        assert not server["mains"]
        assert server["console"] == "off"  # silent: no output while the server has no power
        assert server["draw_w"] == 0
        status, output = await rackd_cli(headless_demo, "outlet", "on", "pdu-a:2", "pdu-b:2", "--reason", "test")
        assert status == 0, output
        await watcher.wait_for(lambda m: m.topic.endswith("/event") and m.json()["type"] == "recovered", within=60)
        done = len(watcher.messages)
        await watcher.wait_for(
            lambda m: watcher.messages.index(m) >= done
            and m.topic.endswith("/state")
            and m.json()["power"].get("chassis") == "on",
            within=60,
        )


def test_sigterm_stops_the_demo_and_every_process_it_started(headless_demo: HeadlessDemo) -> None:
    pids = headless_demo.child_pids()
    assert all(pid_alive(pid) for pid in pids)
    assert headless_demo.stop(signal.SIGTERM) == 0
    assert [pid for pid in pids if pid_alive(pid)] == []
