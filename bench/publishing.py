"""Publishing: readings/s and CPU per reading through rackd's own bus and codec to mosquitto, QoS 0 and QoS 1.

.venv/bin/python -m bench.publishing [--devices 200 --readings 20 --rounds 50] [--quick]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.cpu import Meter, process_cpu
from bench.fleet import unwind_on_sigterm
from bench.report import Table, arguments
from rackd.bus.codec import telemetry_payload
from rackd.bus.mqtt import MqttBus
from rackd.config import DeviceKind, DeviceSpec, MqttConfig
from rackd.logs import configure_logging
from rackd.model import Event, EventType, Reading, SensorKind, Severity
from rackd.runtime.clock import SystemClock
from rackd.testing.broker import Mosquitto

SITE = "bench"


def devices(count: int) -> list[DeviceSpec]:
    """`count` nodes, as the runtime would hand them to the bus."""
    return [
        DeviceSpec(
            id=f"gpu-{i:04d}",
            kind=DeviceKind.NODE,
            rack=f"r{i // 40:02d}",
            role="bmc",
            driver="ipmi",
            options=None,
            poll_interval=30.0,
            call_timeout=5.0,
            power_timeout=60.0,
            protected=False,
            tags=(),
        )
        for i in range(count)
    ]


def readings(count: int) -> list[Reading]:
    """A BMC-like poll: temperatures, fans, voltages, power."""
    kinds = [SensorKind.TEMPERATURE, SensorKind.FAN, SensorKind.VOLTAGE, SensorKind.POWER, SensorKind.CURRENT]
    now = dt.datetime.now(dt.UTC)
    return [Reading.of(f"sensor_{i}", kinds[i % len(kinds)], 20.0 + i * 1.5, observed_at=now) for i in range(count)]


class Subscriber:
    """`mosquitto_sub` in its own process counting what the broker delivered (its CPU is not rackd's)."""

    def __init__(self, broker: Mosquitto, topic: str, expect: int, qos: int) -> None:
        """Subscribe; returns once the subscription is in place."""
        self.expect = expect
        self.proc = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-t",
                topic,
                "-q",
                str(qos),
                "-C",
                str(expect),
                "-F",
                "%t",
                "-W",
                "600",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # mosquitto_sub prints nothing on SUBACK; half a second is ample on loopback

    def _wait(self) -> int:
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.count(b"\n")

    async def received(self) -> int:
        """Wait for it to exit (it does after `expect` messages) and count what it printed; the loop keeps running."""
        return await asyncio.to_thread(self._wait)


async def _drained(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - the bus offers no "sent" event; this polls its own state
        await asyncio.sleep(0.001)


async def measure(count: int, per_message: int, rounds: int, workdir: Path) -> Table:
    """Telemetry (QoS 0) and events (QoS 1, spooled) through MqttBus, then the codec alone for its share."""
    table = Table(
        "publishing",
        "Publishing through rackd's bus to mosquitto",
        [
            "path", "QoS", "messages", "readings/message", "delivered", "messages/s", "readings/s",
            "rackd µs CPU/message", "rackd µs CPU/reading", "codec µs CPU/reading", "mosquitto µs CPU/message",
        ],
    )  # fmt: skip
    broker = Mosquitto(workdir=workdir / "broker")
    (workdir / "broker").mkdir()
    broker.start()
    fleet = devices(count)
    batch = readings(per_message)
    try:
        config = MqttConfig(url=broker.url)
        bus = MqttBus(config, SITE, "bench", workdir, SystemClock(), "bench")
        runner = asyncio.create_task(bus.run())
        await asyncio.wait_for(bus.connected.wait(), 10)

        total = count * rounds
        subscriber = Subscriber(broker, bus.topics.telemetry("+", "+"), total, 0)
        broker_cpu0 = process_cpu(broker.process.pid)  # type: ignore[union-attr]
        with Meter() as span:
            for _ in range(rounds):
                now = dt.datetime.now(dt.UTC)
                for device in fleet:
                    bus.publish_telemetry(device, "bmc", batch, now)
                await _drained(lambda: not bus._telemetry)  # every topic handed to the socket
        broker_cpu = process_cpu(broker.process.pid) - broker_cpu0  # type: ignore[union-attr]
        delivered = await subscriber.received()
        table.add(
            **{
                "path": "publish_telemetry (MqttBus, newest per topic)",
                "QoS": 0,
                "messages": total,
                "readings/message": per_message,
                "delivered": delivered,
                "messages/s": total / span.wall,
                "readings/s": total * per_message / span.wall,
                "rackd µs CPU/message": span.cpu / total * 1e6,
                "rackd µs CPU/reading": span.cpu / (total * per_message) * 1e6,
                "mosquitto µs CPU/message": broker_cpu / total * 1e6,
            }
        )

        subscriber = Subscriber(broker, bus.topics.event("+", "+"), total, 1)
        broker_cpu0 = process_cpu(broker.process.pid)  # type: ignore[union-attr]
        with Meter() as span:
            for _ in range(rounds):
                for device in fleet:
                    bus.publish_event(device, Event(EventType.THRESHOLD_CROSSED, Severity.WARNING, "inlet_temp high"))
                await _drained(lambda: len(bus.spool) == 0 and not bus._unspooled)
        broker_cpu = process_cpu(broker.process.pid) - broker_cpu0  # type: ignore[union-attr]
        delivered = await subscriber.received()
        table.add(
            **{
                "path": "publish_event (SQLite spool, in order, PUBACK then delete)",
                "QoS": 1,
                "messages": total,
                "readings/message": 1,
                "delivered": delivered,
                "messages/s": total / span.wall,
                "readings/s": total / span.wall,
                "rackd µs CPU/message": span.cpu / total * 1e6,
                "rackd µs CPU/reading": span.cpu / total * 1e6,
                "mosquitto µs CPU/message": broker_cpu / total * 1e6,
            }
        )
        await bus.close()
        await asyncio.wait_for(runner, 10)
        bus.close_spool()
    finally:
        broker.cleanup()

    with Meter() as codec:
        now = dt.datetime.now(dt.UTC)
        for _ in range(rounds):
            for device in fleet:
                telemetry_payload(SITE, device, "bmc", batch, now).encode()
    table.rows[0]["codec µs CPU/reading"] = codec.cpu / (count * rounds * per_message) * 1e6
    table.notes += [
        (
            f"{count} devices x {rounds} rounds; each round publishes one telemetry message of {per_message} readings "
            "per device and waits until the bus has handed every topic to the socket (so none is coalesced)."
        ),
        (
            "QoS 1 is the path rackd uses for events and command results: each is written to the SQLite spool before "
            "publish returns, sent in order at QoS 1 and deleted after its PUBACK. Telemetry is QoS 0 by design."
        ),
        (
            "delivered = messages a `mosquitto_sub` in another process received. rackd CPU = getrusage(RUSAGE_SELF) of "
            "this process (the bus, codec and aiomqtt/paho); mosquitto's CPU from /proc."
        ),
        "codec = `telemetry_payload(...).encode()` alone (pydantic model + JSON), the same messages.",
    ]
    return table


def main() -> None:
    """Parse flags, run, write bench/results/publishing.{md,json}."""
    parser = arguments(__doc__ or "")
    unwind_on_sigterm()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--readings", type=int, default=20, help="readings per telemetry message")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    configure_logging("warning")
    count, rounds = (20, 3) if args.quick else (args.devices, args.rounds)
    workdir = Path(tempfile.mkdtemp(prefix="rackd-bench-pub-"))
    try:
        table = asyncio.run(measure(count, args.readings, rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table.quick = args.quick
    table.write(args.out)


if __name__ == "__main__":
    main()
