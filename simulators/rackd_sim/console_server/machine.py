"""One simulated server's serial console: power, boot log, login and a tiny shell, paced at the line's baud rate."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from rackd_sim.console_server import bootlog

CRLF = b"\r\n"


class LoginState(StrEnum):
    """Where the console's getty/shell is."""

    OFF = "off"
    BOOTING = "booting"
    LOGIN = "login"
    PASSWORD = "password"  # noqa: S105 - the getty state name, not a secret
    SHELL = "shell"
    PANICKED = "panicked"


@dataclass
class Output:
    """A sink for console output (one connected client); `send` must not block."""

    send: Callable[[bytes], None]


@dataclass
class SimulatedConsole:
    """The UART of one simulated server: everything it prints goes to every connected client, at line rate."""

    name: str
    baud: int = 115200  # 0: no pacing (as fast as the sockets take it)
    boot_speed: float = 1.0  # multiplies the boot log's delays; 0 boots instantly
    hostname: str | None = None
    password: str = "rackd"  # noqa: S105 - the simulated server's documented login
    seed: int = 0
    powered: bool = False
    state: LoginState = LoginState.OFF
    outputs: list[Output] = field(default_factory=list)
    emitted: bytearray = field(default_factory=bytearray)  # everything the UART ever sent, in order
    _pending: bytearray = field(default_factory=bytearray)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _drained: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _uart: asyncio.Task[None] | None = None
    _boot: asyncio.Task[None] | None = None
    _line: bytearray = field(default_factory=bytearray)
    _boot_started: float = 0.0
    _last_was_cr: bool = False
    _user: str = ""
    _sysrq_armed: bool = False
    breaks: int = 0  # BREAKs that reached this UART (from any client)

    def __post_init__(self) -> None:
        """Seeded randomness so a failing test can be replayed."""
        self.rng = random.Random(self.seed)
        self.hostname = self.hostname or self.name
        self._drained.set()

    # ------------------------------------------------------------------ power

    def start(self) -> None:
        """Start the UART (call inside the running loop)."""
        if self._uart is None:
            self._uart = asyncio.create_task(self._run_uart(), name=f"uart:{self.name}")

    async def stop(self) -> None:
        """Stop the UART and any boot in progress."""
        for task in (self._uart, self._boot, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._uart, self._boot, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._uart = self._boot = None

    def power_on(self) -> None:
        """Power on: firmware, bootloader, kernel, services, login prompt."""
        if self.powered:
            return
        self.powered = True
        self.state = LoginState.BOOTING
        self._boot = asyncio.create_task(self._run_boot(), name=f"boot:{self.name}")

    def power_off(self) -> None:
        """Power off: the console goes silent at once (what is still in the UART's FIFO is lost)."""
        self.powered = False
        self.state = LoginState.OFF
        if self._boot is not None:
            self._boot.cancel()
            self._boot = None
        self._pending.clear()
        self._drained.set()

    # ------------------------------------------------------------------ output

    def emit(self, data: bytes) -> None:
        """Queue bytes for the UART; a powered-off server prints nothing."""
        if not self.powered or not data:
            return
        self._pending += data
        self._drained.clear()
        self._wake.set()

    def println(self, text: str) -> None:
        """One line as a Linux console prints it (CRLF)."""
        self.emit(text.encode("utf-8", "replace") + CRLF)

    def kernel(self, text: str) -> None:
        """A kernel message with its dmesg timestamp."""
        loop = asyncio.get_running_loop()
        self.println(f"[{loop.time() - self._boot_started:12.6f}] {text}")

    async def drained(self) -> None:
        """Until everything queued so far went out."""
        await self._drained.wait()

    async def _run_uart(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                # 8N1 is 10 bits per byte: at 115200 baud 11520 bytes/s, sent in slices of at most ~10 ms.
                size = len(self._pending) if self.baud <= 0 else max(1, min(len(self._pending), self.baud // 1000))
                chunk = bytes(self._pending[:size])
                del self._pending[:size]
                started = loop.time()
                self.emitted += chunk
                for output in list(self.outputs):
                    output.send(chunk)
                if self.baud > 0:
                    await asyncio.sleep(max(0.0, size * 10 / self.baud - (loop.time() - started)))
            self._drained.set()

    # ------------------------------------------------------------------ boot and shell

    async def _pause(self, seconds: float) -> None:
        if self.boot_speed > 0 and seconds > 0:
            await asyncio.sleep(seconds * self.boot_speed)

    async def _run_boot(self) -> None:
        self._boot_started = asyncio.get_running_loop().time()
        for delay, text in bootlog.FIRMWARE:
            await self._pause(delay)
            self.println(text)
        for delay, text in bootlog.KERNEL:
            await self._pause(delay)
            self.kernel(text)
        for delay, text in bootlog.SERVICES:
            await self._pause(delay)
            self.println(text.format(host=self.hostname))
        self.state = LoginState.LOGIN
        self._prompt()

    def _prompt(self) -> None:
        if self.state is LoginState.LOGIN:
            self.emit(f"{self.hostname} login: ".encode())
        elif self.state is LoginState.PASSWORD:
            self.emit(b"Password: ")
        elif self.state is LoginState.SHELL:
            self.emit(f"root@{self.hostname}:~# ".encode())

    def break_received(self) -> None:
        """A serial BREAK: the Linux serial console treats the next key as a Magic SysRq command."""
        self.breaks += 1
        if self.powered:
            self._sysrq_armed = True

    def _sysrq(self, key: int) -> None:
        self._sysrq_armed = False
        if key == ord("c"):
            self.inject_panic()
        elif key == ord("b"):
            self.kernel("sysrq: Resetting")
            self.power_off()
            self.power_on()
        else:
            self.kernel("sysrq: HELP : loglevel(0-9) reboot(b) crash(c) show-all-locks(d) show-memory-usage(m)")

    def receive(self, data: bytes) -> None:
        """Bytes typed on the console (from any client): echoed and interpreted by the getty or shell."""
        if self._sysrq_armed and data:
            self._sysrq(data[0])
            data = data[1:]
        if self.state not in (LoginState.LOGIN, LoginState.PASSWORD, LoginState.SHELL):
            return  # firmware and a panicked kernel ignore the keyboard
        for byte in data:
            if byte in (0x0D, 0x0A):
                if byte == 0x0A and not self._line and self._last_was_cr:
                    self._last_was_cr = False
                    continue  # CR LF from a telnet client is one Enter
                self._last_was_cr = byte == 0x0D
                self.emit(CRLF)
                line = self._line.decode("utf-8", "replace").strip("\x00")
                self._line.clear()
                self._enter(line)
                continue
            self._last_was_cr = False
            if byte == 0x00:
                continue  # telnet's CR NUL
            if byte in (0x7F, 0x08):
                if self._line:
                    del self._line[-1]
                    if self.state is not LoginState.PASSWORD:
                        self.emit(b"\x08 \x08")
                continue
            if len(self._line) >= 4096:
                continue  # a getty's line buffer is finite; what does not fit is dropped, like the real one
            self._line.append(byte)
            if self.state is not LoginState.PASSWORD:
                self.emit(bytes((byte,)))

    def _enter(self, line: str) -> None:
        if self.state is LoginState.LOGIN:
            if line:
                self._user = line
                self.state = LoginState.PASSWORD
        elif self.state is LoginState.PASSWORD:
            if line == self.password:
                self.println(f"Welcome to Ubuntu 24.04.1 LTS ({self.hostname})")
                self.state = LoginState.SHELL
            else:
                self.println("")
                self.println("Login incorrect")
                self.state = LoginState.LOGIN
        else:
            self._run_command(line)
        self._prompt()

    def _run_command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        name, args = words[0], words[1:]
        if name == "echo":
            self.println(" ".join(args))
        elif name == "hostname":
            self.println(self.hostname or self.name)
        elif name == "uname":
            self.println(f"Linux {self.hostname} 6.8.0-45-generic #45-Ubuntu SMP x86_64 GNU/Linux")
        elif name == "nvidia-smi":
            self.println("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5b1e3a0c-7d1f-4f3e-9a7c-1f0e2d3c4b5a)")
        elif name in ("exit", "logout"):
            self.state = LoginState.LOGIN
            self.println("")
        else:
            self.println(f"-bash: {name}: command not found")

    # ------------------------------------------------------------------ faults

    def inject_oops(self) -> None:
        """A kernel oops (the machine keeps running, degraded)."""
        for text in bootlog.OOPS:
            self.kernel(text)

    def inject_panic(self) -> None:
        """A kernel panic; the console then ignores input."""
        for text in bootlog.PANIC:
            self.kernel(text)
        self.state = LoginState.PANICKED

    def inject_xid(self, code: int = 79) -> None:
        """An NVIDIA Xid error line."""
        self.kernel(bootlog.xid_line(code))

    def inject_garbage(self, count: int = 256) -> None:
        """Random bytes (a baud-rate mismatch, line noise)."""
        self.emit(bootlog.garbage(count, self.rng))

    def flood(self, lines: int = 1000) -> None:
        """Output as fast as the line allows."""
        for text in bootlog.flood_lines(lines, self.rng):
            self.kernel(text)
