"""Control channel of a simulated BMC: JSON lines over TCP on loopback, to script state and inject faults."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable
from typing import Any

import structlog

from rackd_sim.bmc.machine import ChassisControl
from rackd_sim.bmc.sel import event_record
from rackd_sim.bmc.server import SimulatedBmc

log = structlog.get_logger(__name__)

JSON = dict[str, Any]


class BmcController:
    """The operations a test or operator can apply to a running simulated BMC."""

    def __init__(self, bmc: SimulatedBmc) -> None:
        """Control this BMC."""
        self.bmc = bmc
        self._ops: dict[str, Callable[[JSON], JSON]] = {
            "status": self._status,
            "faults": self._faults,
            "load": self._load,
            "ambient": self._ambient,
            "sensor": self._sensor,
            "sensor_clear": self._sensor_clear,
            "psu": self._psu,
            "sel_add": self._sel_add,
            "sel_clear": self._sel_clear,
            "cold_reset": self._cold_reset,
            "power": self._power,
            "readings": self._readings,
            "sdr_changed": self._sdr_changed,
            "console": self._console,
        }

    def handle(self, request: JSON) -> JSON:
        """Apply one request; the answer carries `ok` and either data or `error`."""
        self.bmc.machine.tick()
        op = self._ops.get(str(request.get("op")))
        if op is None:
            return {"ok": False, "error": f"unknown op {request.get('op')!r}; known: {sorted(self._ops)}"}
        try:
            return {"ok": True, **op(request)}
        except (KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    def _status(self, _request: JSON) -> JSON:
        bmc = self.bmc
        stats = bmc.sessions.stats
        open_sessions = bmc.sessions.open_sessions()
        return {
            "power": bmc.machine.power_state(),
            "os_up": bmc.machine.os_up(),
            "open_sessions": len(open_sessions),
            "established_sessions": sum(1 for s in open_sessions if s.established),
            "login_attempts": stats.attempts,
            "login_failures": stats.failures,
            "logins": stats.successes,
            "logins_by_suite": {str(k): v for k, v in stats.by_suite.items()},
            "refused_full": stats.refused_full,
            "cold_resets": bmc.cold_resets,
            "sdr_record_reads": bmc.sdr_record_reads,
            "sensor_reads": bmc.sensor_reads,
            "sol_active": bool(bmc.activated),
            "sel_entries": len(bmc.machine.sel.records()),
            "faults": vars(bmc.faults).copy(),
        }

    def _faults(self, request: JSON) -> JSON:
        faults = self.bmc.faults
        for name in ("hang", "reject_credentials", "empty_replies"):
            if name in request:
                setattr(faults, name, bool(request[name]))
        if "drop_rate" in request:
            faults.drop_rate = max(0.0, min(1.0, float(request["drop_rate"])))
        if "delay" in request:
            faults.delay = max(0.0, float(request["delay"]))
        if "drop_next" in request:
            faults.drop_next = max(0, int(request["drop_next"]))
        if "drop_rakp1" in request:
            faults.drop_rakp1 = max(0, int(request["drop_rakp1"]))
        if "drop_rakp4" in request:
            faults.drop_rakp4 = max(0, int(request["drop_rakp4"]))
        return {"faults": vars(faults).copy()}

    def _load(self, request: JSON) -> JSON:
        self.bmc.machine.set_load(float(request["value"]))
        return {}

    def _ambient(self, request: JSON) -> JSON:
        self.bmc.machine.set_ambient(float(request["value"]))
        return {}

    def _sensor(self, request: JSON) -> JSON:
        value = request.get("value")
        self.bmc.machine.set_sensor(str(request["name"]), None if value is None else float(value))
        return {}

    def _sensor_clear(self, request: JSON) -> JSON:
        self.bmc.machine.clear_sensor(str(request["name"]))
        return {}

    def _psu(self, request: JSON) -> JSON:
        self.bmc.machine.fail_psu(int(request["psu"]), bool(request.get("failed", True)))
        return {}

    def _sel_add(self, request: JSON) -> JSON:
        count = int(request.get("count", 1))
        ids = []
        for _ in range(count):
            body = event_record(
                0,
                int(request.get("sensor_type", 0x01)),
                int(request.get("sensor", 1)),
                int(request.get("event_type", 0x01)),
                int(request.get("offset", 0x09)),
                deassertion=bool(request.get("deassertion", False)),
            )
            ids.append(self.bmc.machine.sel.add(body))
        return {"record_ids": ids}

    def _sel_clear(self, _request: JSON) -> JSON:
        self.bmc.machine.sel.clear()
        return {}

    def _cold_reset(self, _request: JSON) -> JSON:
        self.bmc.request_cold_reset()
        return {}

    def _power(self, request: JSON) -> JSON:
        code = self.bmc.machine.control(ChassisControl(str(request["action"])))
        return {"code": code}

    def _readings(self, _request: JSON) -> JSON:
        """Every sensor as clients will see it (after the 8-bit round trip), plus DCMI watts."""
        machine = self.bmc.machine
        values: dict[str, Any] = {}
        for spec in machine.sensors:
            if spec.discrete:
                values[spec.name] = machine.states(spec)
            else:
                value = machine.value(spec)
                values[spec.name] = None if value is None else spec.quantize(value)
        return {"sensors": values, "system_power": round(machine.system_power())}

    def _console(self, request: JSON) -> JSON:
        """Write text to the server's serial console (SOL clients see it); returns what clients typed so far."""
        text = str(request.get("text", ""))
        if text:
            for listener in list(self.bmc.machine.console_listeners):
                listener(text.encode())
        return {"typed": self.bmc.sol_input.decode(errors="replace"), "sol_active": bool(self.bmc.activated)}

    def _sdr_changed(self, _request: JSON) -> JSON:
        self.bmc.bump_sdr()
        return {}


class _LineHandler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        for line in self.rfile:
            try:
                request = json.loads(line)
            except json.JSONDecodeError as exc:
                reply: JSON = {"ok": False, "error": f"not JSON: {exc}"}
            else:
                reply = self.server.controller.handle(request if isinstance(request, dict) else {})
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingTCPServer):
    """Serves a BmcController on a loopback TCP port (one JSON object per line, one answer per line)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, controller: BmcController, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind now; call `start()` to serve from a background thread."""
        super().__init__((host, port), _LineHandler)
        self.controller = controller
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="bmc-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
