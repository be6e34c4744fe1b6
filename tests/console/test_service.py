"""The console service against the simulator: byte-exact logs across reconnects and rotations, patterns, flapping."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from rackd_console.tcp import TcpTransport
from rackd_sim.console_server.harness import wait_for
from rackd_sim.console_server.server import ConsoleServerSim

from rackd.config import Config, load_config
from rackd.console.logformat import device_bytes, log_files, markers
from rackd.console.service import ConsoleService
from rackd.console.session import ConsoleSession
from rackd.drivers.contract import Capability, ConsoleStream, DriverOptions, SessionContext
from rackd.drivers.registry import DriverRegistry
from rackd.model import EventType, Severity
from rackd.runtime.clock import Clock, SystemClock
from rackd.testing.clock import ManualClock
from rackd.testing.recording_bus import RecordingPublisher

ConfigMaker = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigMaker:
    def make(consoles: dict[str, str], console_section: str = "") -> Config:
        nodes = "".join(
            f'[[node]]\nid = "{node}"\nrack = "r1"\nconsole = {{ url = "{url}" }}\n' for node, url in consoles.items()
        )
        text = textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            state_dir = "{tmp_path}/state"
            console_log_dir = "{tmp_path}/console"
            [console]
            """
        )
        settings = {"reconnect_initial": "0.01", "reconnect_max": "0.05"}
        for line in textwrap.dedent(console_section).splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                settings[key.strip()] = value.strip()
        section = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = tmp_path / "rackd.toml"
        path.write_text(text + section + nodes)
        return load_config(path, DriverRegistry())

    return make


async def connections_reach(session: ConsoleSession, count: int) -> None:
    await wait_for(lambda: session.connections == count, what=f"connection {count}")


class Running:
    def __init__(self, service: ConsoleService, publisher: RecordingPublisher) -> None:
        self.service = service
        self.publisher = publisher
        self.task: asyncio.Task[None] | None = None


@pytest_asyncio.fixture
async def run_service() -> AsyncIterator[Callable[[Config, Clock], Running]]:
    running: list[Running] = []

    def start(config: Config, clock: Clock) -> Running:
        publisher = RecordingPublisher()
        service = ConsoleService(config, DriverRegistry(), publisher, clock)
        handle = Running(service, publisher)
        handle.task = asyncio.create_task(service.run())
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.service.aclose()
        assert handle.task is not None
        handle.task.cancel()
        await asyncio.gather(handle.task, return_exceptions=True)


async def test_log_is_byte_exact_across_reconnects_and_rotations_with_gaps_marked(
    sim: ConsoleServerSim, make_config: ConfigMaker, run_service: Callable[[Config, Clock], Running], tmp_path: Path
) -> None:
    endpoint = sim["node1"]
    console = endpoint.console
    config = make_config(
        {"gpu-01": f"tcp://127.0.0.1:{endpoint.ports['raw']}"},
        "rotate_bytes = 8192\nrotate_keep = 100\nflap_limit = 100\n",
    )
    handle = run_service(config, SystemClock())
    session = handle.service.sessions["gpu-01"]

    def delivered() -> bool:  # everything the simulator sent on rackd's connections has reached the session
        return session.received_bytes == sum(len(r.sent) for r in endpoint.records_of("raw"))

    await wait_for(lambda: session.connections == 1, what="first connection")
    console.power_on()
    await wait_for(lambda: b"login: " in session.ring.contents(), what="login prompt")
    for round_number in range(3):
        console.flood(60)
        console.inject_garbage(3000)  # 0xFF, NUL, lone CRs: stored as they are
        console.emit(b"a line cut in the mid")  # the connection drops inside this line
        await console.drained()
        await wait_for(delivered, what=f"round {round_number} delivered")
        await sim.go_offline("node1")
        await wait_for(lambda: session.state in {"disconnected", "unreachable"}, what="disconnect seen")
        console.println("emitted while nobody was connected")  # lost on purpose: the gap
        await console.drained()
        await sim.go_online("node1")
        await connections_reach(session, round_number + 2)
    console.inject_panic()
    await console.drained()
    await wait_for(delivered, what="panic delivered")
    await handle.service.aclose()

    path = tmp_path / "console" / "gpu-01.log"
    files = log_files(path)
    assert len(files) >= 4, files  # several rotations
    contents = [p.read_bytes() for p in files]
    sent = b"".join(bytes(r.sent) for r in endpoint.records_of("raw"))
    assert b"emitted while nobody" not in sent
    assert device_bytes(contents) == sent  # every byte, in order, nothing added
    notes = markers(contents)
    assert sum(n.startswith("gap: ") for n in notes) == 3
    assert sum(n.startswith("disconnected: ") for n in notes) == 3
    assert sum(n.startswith("connected to tcp://") for n in notes) == 4
    assert all("unencrypted" in n for n in notes if n.startswith("connected to"))
    assert notes[-1] == "rackd stopping: console no longer captured"
    assert path.stat().st_mode & 0o777 == 0o640


async def test_panic_and_xid_each_publish_one_event_with_context(
    sim: ConsoleServerSim, make_config: ConfigMaker, run_service: Callable[[Config, Clock], Running]
) -> None:
    endpoint = sim["node1"]
    config = make_config({"gpu-01": f"telnet://127.0.0.1:{endpoint.ports['telnet']}"})
    handle = run_service(config, SystemClock())
    session = handle.service.sessions["gpu-01"]
    await wait_for(lambda: session.connections == 1, what="connected")
    endpoint.console.power_on()
    events = handle.publisher.events_of

    await wait_for(lambda: len(events(EventType.CONSOLE_PATTERN)) == 1, what="login prompt event")
    (login,) = events(EventType.CONSOLE_PATTERN)
    assert login.data["pattern"] == "login_prompt"
    assert login.severity is Severity.INFO
    endpoint.console.inject_xid(79)
    endpoint.console.inject_xid(79)  # a repeat within the interval is held back
    endpoint.console.inject_panic()
    await endpoint.console.drained()
    await wait_for(lambda: session.received_bytes == len(endpoint.records_of("telnet")[0].sent), what="delivered")
    by_pattern = [e.data["pattern"] for e in events(EventType.CONSOLE_PATTERN)]
    assert by_pattern == ["login_prompt", "nvidia_xid", "kernel_panic"]
    xid, panic = events(EventType.CONSOLE_PATTERN)[1:]
    assert "NVRM: Xid (PCI:0000:3b:00): 79" in xid.data["line"]
    assert xid.severity is Severity.CRITICAL
    assert "Kernel panic - not syncing" in panic.data["line"]
    assert panic.data["context"][-1].endswith("sysrq: Trigger a crash")  # the lines before the match
    assert panic.severity is Severity.CRITICAL


async def test_a_console_that_keeps_closing_is_backed_off_not_hammered(
    make_config: ConfigMaker, run_service: Callable[[Config, Clock], Running]
) -> None:
    accepted: list[float] = []
    clock = ManualClock()

    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(clock.monotonic())
        writer.close()  # a BMC killing a new SOL session because a stale one is still active

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = make_config(
        {"gpu-01": f"tcp://127.0.0.1:{port}"},
        "stable_after = 60\nflap_limit = 3\nflap_backoff = 600\nreconnect_initial = 1\nreconnect_max = 8\n",
    )
    try:
        handle = run_service(config, clock)
        session = handle.service.sessions["gpu-01"]
        for count in range(1, 6):
            await connections_reach(session, count)
            await wait_for(
                lambda: session.state == "disconnected" and clock.next_deadline is not None, what="backing off"
            )
            deadline = clock.next_deadline
            assert deadline is not None
            await clock.advance(deadline - clock.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(accepted)]
        assert all(gap <= 8 for gap in gaps[:2])  # ordinary jittered backoff first
        assert all(300 <= gap <= 600 for gap in gaps[2:])  # then the long flap backoff
        notes = markers([p.read_bytes() for p in log_files(handle.service.log_dir / "gpu-01.log")])
        assert sum("keeps closing the session" in n for n in notes) == 1  # said once, not every time
    finally:
        server.close()
        await server.wait_closed()


class SolOptions(DriverOptions):
    port: int


class SolSession:
    """A BMC session that offers serial-over-LAN, standing in for rackd_ipmi until it exposes one."""

    closed = 0

    def __init__(self, port: int) -> None:
        self.port = port

    async def open_console(self) -> ConsoleStream:
        return await TcpTransport("127.0.0.1", self.port).open_console()

    async def close(self) -> None:
        SolSession.closed += 1


class SolDriver:
    name: ClassVar[str] = "solbmc"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CONSOLE})
    options_model: ClassVar[type[DriverOptions]] = SolOptions

    async def open(self, context: SessionContext, options: Any) -> SolSession:
        assert context.role == "console"
        return SolSession(options.port)

    async def aclose(self) -> None:
        return None


def sol_config(tmp_path: Path, registry: DriverRegistry, bmc: str) -> Config:
    path = tmp_path / "sol.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            state_dir = "{tmp_path}/state"
            console_log_dir = "{tmp_path}/console"
            [[node]]
            id = "gpu-01"
            rack = "r1"
            bmc = {bmc}
            console = {{ url = "ipmi-sol" }}
            """
        )
    )
    return load_config(path, registry)


async def test_ipmi_sol_uses_the_bmc_drivers_console_and_logs_its_session_out(
    sim: ConsoleServerSim, tmp_path: Path
) -> None:
    registry = DriverRegistry(extra={"solbmc": SolDriver})
    config = sol_config(tmp_path, registry, f'{{ driver = "solbmc", port = {sim["node1"].ports["raw"]} }}')
    service = ConsoleService(config, registry, RecordingPublisher(), SystemClock())
    task = asyncio.create_task(service.run())
    session = service.sessions["gpu-01"]
    try:
        await wait_for(lambda: session.state == "connected", what="SOL console connected")
        sim["node1"].console.power_on()
        await wait_for(lambda: b"login: " in session.ring.contents(), what="output over SOL")
    finally:
        await service.aclose()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert SolSession.closed == 1  # the BMC session behind the console was logged out


async def test_ipmi_sol_without_a_driver_console_is_reported_unsupported_once(tmp_path: Path) -> None:
    registry = DriverRegistry()
    config = sol_config(tmp_path, registry, '{ driver = "fake", host = "gpu-01" }')
    service = ConsoleService(config, registry, RecordingPublisher(), ManualClock())
    task = asyncio.create_task(service.run())
    session = service.sessions["gpu-01"]
    await wait_for(lambda: session.state == "stopped", what="given up on the console")
    notes = markers([p.read_bytes() for p in log_files(service.log_dir / "gpu-01.log")])
    assert len(notes) == 2
    assert notes[0].startswith("rackd capturing this console (ipmi-sol)")
    assert notes[1].startswith("console unsupported: console ipmi-sol of gpu-01: driver 'fake' does not offer")
    await service.aclose()
    await task


async def test_reload_adds_removes_and_changes_consoles_and_leaves_the_rest_connected(
    make_config: ConfigMaker, run_service: Callable[[Config, Clock], Running]
) -> None:
    sim = ConsoleServerSim(["node1", "node2", "node3"], baud=0, boot_speed=0)
    await sim.start()
    try:
        url = {name: f"tcp://127.0.0.1:{sim[name].ports['raw']}" for name in sim.endpoints}
        handle = run_service(make_config({"gpu-01": url["node1"], "gpu-02": url["node2"]}), SystemClock())
        service = handle.service
        first = dict(service.sessions)
        await wait_for(lambda: all(s.state == "connected" for s in first.values()), what="both connected")
        telnet2 = f"telnet://127.0.0.1:{sim['node2'].ports['telnet']}"
        await service.reload(make_config({"gpu-01": url["node1"], "gpu-02": telnet2, "gpu-03": url["node3"]}))
        assert service.sessions["gpu-01"] is first["gpu-01"]  # untouched: same session, still connected
        assert first["gpu-01"].connections == 1
        assert service.sessions["gpu-02"] is not first["gpu-02"]
        await wait_for(
            lambda: all(s.state == "connected" for s in service.sessions.values()), what="all connected after reload"
        )
        assert service.sessions["gpu-02"].console.url == telnet2
        await service.reload(make_config({"gpu-03": url["node3"]}))
        assert sorted(service.sessions) == ["gpu-03"]
        notes = markers([p.read_bytes() for p in log_files(service.log_dir / "gpu-01.log")])
        assert notes[-1] == "console removed from the config"
    finally:
        await sim.close()
