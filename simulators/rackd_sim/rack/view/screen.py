"""The demo's curses screen: servers, feeds, budget and events, refreshed live; keys to cycle, fault, attach."""

from __future__ import annotations

import contextlib
import curses
import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rackd_sim.fault.cli import send
from rackd_sim.rack.view.picture import RackPicture

REFRESH_S = 0.5
FAULT_KEYS = {
    "1": ("hang", None),
    "2": ("packet-loss", "0.3"),
    "3": ("slow", "2"),
    "4": ("cold-reset", None),
    "5": ("panic", None),
    "6": ("xid", "79"),
    "7": ("psu-fail", "1"),
    "0": ("clear", None),
}
FAULT_MENU = "fault: 1 BMC hang  2 packet loss  3 slow BMC  4 BMC cold reset  5 panic  6 GPU Xid  7 PSU1 fail  0 clear"


@dataclass
class ViewSetup:
    """What the view needs to know about the running demo."""

    site: str
    rack: str
    servers: list[str]
    broker_port: int
    config: Path
    rack_control: str
    how_to: list[str]
    failed_child: Callable[[], str | None]
    consoles: set[str] = field(default_factory=set)
    pdus: list[str] = field(default_factory=list)


class RackView:
    """Subscribes to the rack's topics, polls the virtual rack's own status, and draws both."""

    def __init__(self, setup: ViewSetup, stop: threading.Event) -> None:
        """Nothing runs until `run()`."""
        self.setup = setup
        self.stop = stop
        self.picture = RackPicture(setup.site, setup.rack, setup.servers)
        self.selected = 0
        self.notice = ""
        self.sim: dict[str, dict[str, Any]] = {}
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rackd-demo-view-{id(self)}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        client.subscribe(f"rackd/v1/{self.setup.site}/{self.setup.rack}/#", qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.picture.apply(message.topic, bytes(message.payload))

    def _poll_sim(self) -> None:
        """The simulator's side (console state, injected faults) once per refresh, off the UI thread."""
        while not self.stop.wait(1.0):
            try:
                status = send(self.setup.rack_control, {"op": "status"}, timeout=2.0)
            except (OSError, ValueError):
                continue
            self.sim = {server["id"]: server for server in status.get("servers", [])}

    def _background(self, what: str, argv: list[str]) -> None:
        def work() -> None:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own CLI
            lines = (result.stdout + result.stderr).strip().splitlines()
            self.notice = f"{what}: {lines[-1] if lines else f'exit {result.returncode}'}"

        self.notice = f"{what}: running …"
        threading.Thread(target=work, daemon=True).start()

    def _rackd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rackd", *args, "-c", str(self.setup.config)]

    def run(self, screen: curses.window) -> int:
        """Draw until `q` or a stop signal; returns the exit status."""
        curses.curs_set(0)
        curses.use_default_colors()
        for pair, colour in ((1, curses.COLOR_GREEN), (2, curses.COLOR_RED), (3, curses.COLOR_YELLOW)):
            curses.init_pair(pair, colour, -1)
        screen.timeout(int(REFRESH_S * 1000))
        self._client.connect_async("127.0.0.1", self.setup.broker_port)
        self._client.loop_start()
        threading.Thread(target=self._poll_sim, daemon=True, name="demo-sim-status").start()
        try:
            while not self.stop.is_set():
                failure = self.setup.failed_child()
                if failure is not None:
                    self.notice = failure
                self._draw(screen)
                key = screen.getch()
                if key in (ord("q"), ord("Q")):
                    return 0
                self._key(screen, key)
            return 0
        finally:
            self._client.loop_stop()
            self._client.disconnect()

    def _node(self) -> str:
        return self.setup.servers[self.selected % len(self.setup.servers)]

    def _key(self, screen: curses.window, key: int) -> None:
        if key in (curses.KEY_DOWN, ord("j")):
            self.selected = (self.selected + 1) % len(self.setup.servers)
        elif key in (curses.KEY_UP, ord("k")):
            self.selected = (self.selected - 1) % len(self.setup.servers)
        elif key == ord("c"):
            node = self._node()
            self._background(f"power cycle {node}", self._rackd("power", "cycle", node, "--reason", "demo view"))
        elif key == ord("e"):
            node = self._node()
            self._background(
                f"escalating cycle {node}",
                self._rackd("power", "cycle", node, "--escalate", "--reason", "demo view"),
            )
        elif key == ord("f"):
            self._fault(screen)
        elif key == ord("p"):
            self._pdu_fault(screen)
        elif key == ord("a"):
            self._attach(screen)

    def _fault(self, screen: curses.window) -> None:
        node = self._node()
        choice = self._ask(screen, f"{node} {FAULT_MENU}")
        if choice not in FAULT_KEYS:
            self.notice = "fault: cancelled"
            return
        kind, value = FAULT_KEYS[choice]
        self._inject(node, kind, value)

    def _ask(self, screen: curses.window, prompt: str) -> str:
        """One key in answer to `prompt` (shown in the notice line)."""
        self.notice = prompt
        self._draw(screen)
        screen.timeout(-1)
        try:
            return chr(screen.getch())
        except ValueError:
            return ""
        finally:
            screen.timeout(int(REFRESH_S * 1000))

    def _inject(self, target: str, kind: str, value: str | None) -> None:
        try:
            reply = send(self.setup.rack_control, {"op": "fault", "target": target, "kind": kind, "value": value})
        except (OSError, ValueError) as exc:
            self.notice = f"fault: cannot reach the rack: {exc}"
            return
        self.notice = f"{target}: {reply.get('result') or reply.get('error')}"

    def _pdu_fault(self, screen: curses.window) -> None:
        pdus = self.setup.pdus[:9]
        menu = "  ".join(f"{n} {pdu} timeout" for n, pdu in enumerate(pdus, 1))
        choice = self._ask(screen, f"PDU fault: {menu}  0 clear all")
        if choice == "0":
            for pdu in pdus:
                self._inject(pdu, "clear", None)
            self.notice = "PDU faults cleared"
        elif choice.isdigit() and 1 <= int(choice) <= len(pdus):
            self._inject(pdus[int(choice) - 1], "timeout", None)
        else:
            self.notice = "PDU fault: cancelled"

    def _attach(self, screen: curses.window) -> None:
        node = self._node()
        if node not in self.setup.consoles:
            self.notice = f"{node} has no console"
            return
        curses.def_prog_mode()
        curses.endwin()
        print(f"\nattaching to {node}'s console: detach with &.\n", flush=True)
        subprocess.run(self._rackd("console", node), check=False)  # noqa: S603 - our own CLI
        curses.reset_prog_mode()
        screen.clear()
        self.notice = f"detached from {node}"

    # ------------------------------------------------------------------ drawing

    def _draw(self, screen: curses.window) -> None:
        screen.erase()
        height, width = screen.getmaxyx()
        lines = self._lines()
        for row, (text, attr) in enumerate(lines[: height - 1]):
            with contextlib.suppress(curses.error):  # the terminal shrank while drawing
                screen.addnstr(row, 0, text, width - 1, attr)
        screen.refresh()

    def _lines(self) -> list[tuple[str, int]]:
        green, red, yellow = (curses.color_pair(n) for n in (1, 2, 3))
        now = dt.datetime.now(dt.UTC).strftime("%H:%M:%S UTC")
        out: list[tuple[str, int]] = [
            ((f"rackd demo   site {self.setup.site}   rack {self.setup.rack}   {now}   "
             f"messages {self.picture.messages}"), curses.A_BOLD),
            ("", 0),
            ((f"  {'SERVER':<10} {'POWER':<6} {'DRAW W':>8} {'BMC W':>7} {'GPU MAX':>8} {'HEALTH':<9} {'BMC':<6} "
             f"{'CONSOLE':<9} {'FEEDS':<6} FAULTS"), curses.A_UNDERLINE),
        ]
        for index, row in enumerate(self.picture.rows()):
            sim = self.sim.get(row.id, {})
            feeds = "".join("AB"[i] if on else "-" for i, on in enumerate(sim.get("feeds_on", [])[:2]))
            faults = ",".join([*sim.get("bmc_faults", {}), *(f"psu{n}" for n in sim.get("failed_psus", []))])
            console = str(sim.get("console", "-")) if row.id in self.setup.consoles else "-"
            text = (
                f"{'>' if index == self.selected else ' '} {row.id:<10} {row.power:<6} {_watts(row.draw_w):>8} "
                f"{_watts(row.bmc_w):>7} {_celsius(row.hottest_gpu):>8} {row.health:<9} {row.bmc:<6} "
                f"{console:<9} {feeds:<6} {faults}"
            )
            attr = red if row.bmc == "down" or row.power == "off" else yellow if row.health not in {"ok", "-"} else 0
            out.append((text, attr | (curses.A_REVERSE if index == self.selected else 0)))
        total, budget = self.picture.totals()
        out += [("", 0), (f"  {'FEED':<6} {'POWER W':>9} {'OF BUDGET':>10}  PHASE CURRENTS (A)        PDUs",
                          curses.A_UNDERLINE)]
        for feed in self.picture.feeds():
            share = f"{feed.power / budget:.0%}" if feed.power is not None and budget else "-"
            phases = "  ".join(f"L{p} {_amps(a)}" for p, a in feed.phases.items()) or "-"
            out.append((f"  {feed.feed:<6} {_watts(feed.power):>9} {share:>10}  {phases:<25} {', '.join(feed.pdus)}",
                        0))
        use = total / budget if total is not None and budget else None
        bar = "#" * round(30 * min(use, 1.0)) if use is not None else ""
        rack_attr = red if use is not None and use >= 1 else yellow if use is not None and use >= 0.9 else green
        out.append(((f"  RACK   {_watts(total):>9} of {_watts(budget)} W budget "
                     f"{'' if use is None else f'{use:.0%}':>5} [{bar:<30}]"), rack_attr))
        out += [("", 0), ("  LATEST EVENTS", curses.A_UNDERLINE)]
        for event in self.picture.latest_events(8):
            severity = str(event.get("severity", ""))
            ts = str(event.get("ts", ""))[11:19]
            attr = red if severity == "critical" else yellow if severity == "warning" else 0
            out.append(((f"  {ts} {event.get('device', ''):<10} {severity:<8} {event.get('type', ''):<20} "
                        f"{event.get('message', '')}"), attr))
        out += [
            ("", 0),
            (("  keys: up/down select   c power-cycle   e cycle with escalation   f server fault   p PDU fault   "
             "a attach console   q quit"), curses.A_BOLD),
            (f"  {self.notice or ('' if self.picture.messages else 'waiting for the first figures …')}", yellow),
            ("", 0),
            *((f"  {line.strip()}", 0) for line in self.setup.how_to if "stream" in line or "status:" in line),
        ]
        return out


def _watts(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _celsius(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} C"


def _amps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_view(setup: ViewSetup, stop: threading.Event) -> int:
    """Run the view in this terminal until `q` or `stop` is set."""
    view = RackView(setup, stop)
    result: int = curses.wrapper(view.run)
    return result
