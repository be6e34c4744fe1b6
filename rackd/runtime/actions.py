"""Power and outlet actions: planned against the interlocks, carried out step by step, verified by observed state."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from rackd.bus.publisher import Publisher
from rackd.config import Config, DeviceKind, DeviceSpec
from rackd.control.protocol import Role
from rackd.errors import DeviceError, DeviceRefusedError, RackdError, describe
from rackd.model import (
    Command,
    CommandResult,
    CommandStatus,
    CommandStep,
    Event,
    EventType,
    PowerAction,
    PowerState,
    Severity,
)
from rackd.runtime.audit import AuditLog
from rackd.runtime.clock import Clock
from rackd.runtime.command_store import CommandStore
from rackd.runtime.rack_power import rack_figures
from rackd.runtime.runner import DeviceRunner

log = structlog.get_logger(__name__)

CHASSIS = "chassis"
NODE_ACTIONS = frozenset({"status", "on", "off", "soft_off", "reset", "cycle", "diag"})
OUTLET_ACTIONS = frozenset({"status", "on", "off", "cycle"})
READ_ONLY = frozenset({"power.status", "outlet.status", "refresh"})
StepSink = Callable[[CommandStep], None]


MAX_CONSOLE_TEXT = 4096


class ConsoleWriter(Protocol):
    """What the engine needs of a console session."""

    async def write(self, data: bytes) -> None:
        """Send input."""

    async def send_break(self) -> None:
        """Send a serial BREAK."""


def redacted(command: Command) -> Command:
    """The command as it may be stored and audited: console input is replaced by its length."""
    text = command.args.get("text")
    if command.action == "console.send" and isinstance(text, str):
        return dataclasses.replace(command, args={**command.args, "text": f"<{len(text)} characters, not logged>"})
    return command


class CommandRejectedError(RackdError):
    """An interlock or a validation refused the command before anything was sent to a device."""


class ActionFailedError(RackdError):
    """The action was carried out but its outcome was not observed (or a device call failed)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, through what, with which role; where the results go."""

    via: str  # "mqtt" or "socket"
    who: str  # the unix peer, or the MQTT request's requested_by (authenticated only when signed)
    role: Role
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class Switch:
    """One switchable thing an action touches: a runner and its target id."""

    runner: DeviceRunner
    target: str

    @property
    def label(self) -> str:
        """`gpu-01/chassis`, `pdu-a1/7`."""
        return f"{self.runner.spec.id}/{self.target}"


@dataclass
class Plan:
    """What a command will do, decided before anything is sent."""

    command: Command
    origin: Origin
    verb: str  # status, on, off, soft_off, reset, cycle, diag, refresh
    switches: list[Switch]  # all switched together (a node's outlets: all off before any on)
    locks: list[str]  # targets held busy while the action runs
    fallback: list[Switch] = field(default_factory=list)  # PDU outlets for escalation from the BMC
    escalate: bool = False
    protected: bool = False


def _verb(action: str) -> tuple[str, str]:
    family, _, verb = action.partition(".")
    return family, verb


class ActionEngine:
    """Takes commands from any intake; never acts twice for one id; reports every step."""

    def __init__(
        self,
        config: Config,
        runners: Mapping[str, DeviceRunner],
        publisher: Publisher,
        clock: Clock,
        state_dir: Path,
    ) -> None:
        """Open the command store and the audit log."""
        self.config = config
        self.settings = config.settings.actions
        self.runners = runners
        self.publisher = publisher
        self.clock = clock
        self.store = CommandStore(state_dir / "commands.sqlite3")
        self.audit = AuditLog(state_dir / "audit.jsonl")
        self._busy: dict[str, str] = {}
        self._last_action: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[CommandResult]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.console_marker: Callable[[str, str], None] | None = None
        self.consoles: Mapping[str, ConsoleWriter] = {}  # the console service's sessions, when it runs
        self.closing = False

    # ------------------------------------------------------------------ intake

    async def submit(
        self, command: Command, origin: Origin, *, force: bool = False, on_step: StepSink | None = None
    ) -> CommandResult:
        """Carry out a command and return its final result (a known id returns the stored result)."""
        known = self.store.get(command.id)
        if known is not None:
            inflight = self._inflight.get(command.id)
            if inflight is not None:
                return await asyncio.shield(inflight)
            log.info("command_repeated", command_id=command.id, status=known.status.value)
            self._publish(command.device, known, origin)  # a retrying client still gets an answer
            return known
        try:
            plan = self._plan(command, origin, force=force)
        except CommandRejectedError as exc:
            result = CommandResult(
                command.id, command.device, command.action, CommandStatus.REJECTED, str(exc), at=self.clock.now()
            )
            if self._claim(command, result) is not False:
                self._audit(command, origin, result)
                self._publish(command.device, result, origin)
                log.info("command_rejected", command_id=command.id, device=command.device, reason=str(exc))
            return result
        accepted = CommandResult(
            command.id, command.device, command.action, CommandStatus.ACCEPTED, "accepted", at=self.clock.now()
        )
        claimed = self._claim(command, accepted)
        if claimed is None:
            # Without the id on disk a redelivery after a crash could act twice: refuse rather than risk it.
            refused = CommandResult(
                command.id,
                command.device,
                command.action,
                CommandStatus.REJECTED,
                "cannot record the command id (state dir unwritable): refusing to act",
                at=self.clock.now(),
            )
            self._audit(command, origin, refused)
            self._publish(command.device, refused, origin)
            return refused
        if not claimed:  # lost a race with the same id
            return await self.submit(command, origin, force=force, on_step=on_step)
        self._publish(command.device, accepted, origin)
        for lock in plan.locks:
            self._busy[lock] = command.id
        task = asyncio.create_task(self._run(plan, on_step), name=f"command:{command.id}")
        self._inflight[command.id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(command.id, None)

    def _claim(self, command: Command, result: CommandResult) -> bool | None:
        """Record a new id: True, False if already known, None if the store cannot be written."""
        try:
            return self.store.claim(redacted(command), result)
        except sqlite3.Error as exc:
            log.error("command_store_write_failed", command_id=command.id, error=str(exc))  # noqa: TRY400 - no traceback
            return None

    def _store(self, result: CommandResult) -> None:
        try:
            self.store.update(result)
        except sqlite3.Error as exc:  # the action goes on; its result still reaches the spool and the audit log
            log.error("command_store_write_failed", command_id=result.id, error=str(exc))  # noqa: TRY400 - no traceback

    def idle(self) -> bool:
        """True when no command is being carried out."""
        return all(task.done() for task in self._inflight.values())

    def submit_in_background(self, command: Command, origin: Origin, *, force: bool = False) -> None:
        """Submit without waiting (MQTT intake must keep reading while a cycle runs)."""
        task = asyncio.create_task(self.submit(command, origin, force=force), name=f"intake:{command.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ planning: the interlocks

    def _plan(self, command: Command, origin: Origin, *, force: bool) -> Plan:
        if self.closing:
            raise CommandRejectedError("the daemon is shutting down; send the command again after it restarted")
        family, verb = _verb(command.action)
        spec = self._spec(command.device)
        if command.action == "refresh":
            return Plan(command, origin, "refresh", [], [])
        needed = Role.VIEWER if command.action in READ_ONLY else Role.OPERATOR
        if origin.role < needed:
            raise CommandRejectedError(
                f"{command.action} needs role {needed.name.lower()}; {origin.who} has {origin.role.name.lower()}"
            )
        if family == "power":
            plan = self._plan_node(command, origin, spec, verb)
        elif family == "outlet":
            plan = self._plan_outlet(command, origin, spec, verb)
        elif family == "console":
            plan = self._plan_console(command, origin, spec, verb)
        else:
            raise CommandRejectedError(f"unknown action {command.action!r} (power.*, outlet.*, console.*, refresh)")
        if verb == "status":
            plan.locks = []
            return plan
        self._check_interlocks(plan, origin, force=force)
        if verb == "on" and family == "power":
            self._check_budget(spec)
        return plan

    def _check_interlocks(self, plan: Plan, origin: Origin, *, force: bool) -> None:
        admin_force = force and origin.role >= Role.ADMIN
        if plan.protected and not admin_force:
            raise CommandRejectedError(f"{plan.command.device} is protected: needs role admin and force=true")
        for lock in plan.locks:
            if lock in self._busy:
                raise CommandRejectedError(
                    f"{lock} is busy with command {self._busy[lock]}; try again when it finished"
                )
        now = self.clock.monotonic()
        for lock in plan.locks:
            last = self._last_action.get(lock)
            if last is not None and now - last < self.settings.min_interval and not admin_force:
                raise CommandRejectedError(
                    f"{lock} was acted on {now - last:.0f} s ago; the minimum interval is "
                    f"{self.settings.min_interval:g} s (admin may force)"
                )

    def _spec(self, device: str) -> DeviceSpec:
        try:
            return self.config.device(device)
        except KeyError:
            raise CommandRejectedError(f"unknown device {device!r}") from None

    def _runner(self, device: str) -> DeviceRunner:
        runner = self.runners.get(device)
        if runner is None:
            raise CommandRejectedError(f"{device} has no driver configured")
        return runner

    def _plan_node(self, command: Command, origin: Origin, spec: DeviceSpec, verb: str) -> Plan:
        if spec.kind is not DeviceKind.NODE:
            raise CommandRejectedError(
                f"{spec.id} is a {spec.kind}; power.* acts on nodes (use outlet.* for PDU outlets)"
            )
        if verb not in NODE_ACTIONS:
            raise CommandRejectedError(f"unknown power action {verb!r} (one of: {', '.join(sorted(NODE_ACTIONS))})")
        via = str(command.args.get("via", "auto"))
        if via not in {"auto", "bmc", "pdu"}:
            raise CommandRejectedError(f"via must be auto, bmc or pdu, not {via!r}")
        outlets = [self._outlet_switch(ref) for ref in spec.outlets]
        has_bmc = spec.id in self.runners
        escalate = bool(command.args.get("escalate", spec.escalate))
        if via == "pdu" or (via == "auto" and not has_bmc):
            if not outlets:
                raise CommandRejectedError(f"{spec.id} has no outlets configured")
            if verb in {"soft_off", "reset", "diag"}:
                raise CommandRejectedError(f"power.{verb} needs the BMC; outlets can only switch on, off or cycle")
            return Plan(
                command, origin, verb, outlets, [spec.id, *(s.label for s in outlets)], protected=spec.protected
            )
        if not has_bmc:
            raise CommandRejectedError(f"{spec.id} has no BMC configured")
        switches = [Switch(self._runner(spec.id), CHASSIS)]
        locks = [spec.id] + ([s.label for s in outlets] if escalate else [])
        return Plan(
            command,
            origin,
            verb,
            switches,
            locks,
            fallback=outlets if escalate else [],
            escalate=escalate,
            protected=spec.protected,
        )

    def _outlet_switch(self, ref: str) -> Switch:
        pdu, _, outlet = ref.partition(":")
        return Switch(self._runner(pdu), outlet)

    def _plan_outlet(self, command: Command, origin: Origin, spec: DeviceSpec, verb: str) -> Plan:
        if spec.kind is not DeviceKind.PDU:
            raise CommandRejectedError(f"{spec.id} is a {spec.kind}; outlet.* acts on PDUs")
        if verb not in OUTLET_ACTIONS:
            raise CommandRejectedError(f"unknown outlet action {verb!r} (one of: {', '.join(sorted(OUTLET_ACTIONS))})")
        outlet = command.args.get("outlet")
        if not isinstance(outlet, (str, int)) or isinstance(outlet, bool) or str(outlet) == "":
            raise CommandRejectedError("outlet.* needs args.outlet (the outlet number)")
        switch = Switch(self._runner(spec.id), str(outlet))
        ref = f"{spec.id}:{outlet}"
        # An outlet that feeds a protected node (a switch, the console server) is as protected as the node.
        protected = spec.protected or any(ref in node.outlets and node.protected for node in self.config.devices)
        return Plan(command, origin, verb, [switch], [switch.label], protected=protected)

    def _plan_console(self, command: Command, origin: Origin, spec: DeviceSpec, verb: str) -> Plan:
        if verb not in {"send", "break"}:
            raise CommandRejectedError(f"unknown console action {verb!r} (send, break)")
        if spec.id not in self.consoles:
            raise CommandRejectedError(f"{spec.id} has no console configured")
        if verb == "send":
            text = command.args.get("text")
            if not isinstance(text, str) or not text or len(text) > MAX_CONSOLE_TEXT:
                raise CommandRejectedError(f"console.send needs args.text, 1 to {MAX_CONSOLE_TEXT} characters")
        return Plan(command, origin, verb, [], [])

    def _check_budget(self, spec: DeviceSpec) -> None:
        budget = next((r.power_budget_w for r in self.config.settings.rack if r.id == spec.rack), None)
        if budget is None:
            return
        draw = self.rack_draw(spec.rack)
        runner = self.runners.get(spec.id)
        observed = runner.last_on_power if runner is not None else None
        expected = observed if observed is not None else (spec.max_power_w or 0.0)
        if draw + expected > budget:
            raise CommandRejectedError(
                f"power-on of {spec.id} would exceed rack {spec.rack}'s budget: {draw:.0f} W drawn + "
                f"{expected:.0f} W expected > {budget:.0f} W"
            )

    def rack_draw(self, rack: str) -> float:
        """The rack's measured draw: the PDUs' total, else the sum of its nodes' own (BMC) figures."""
        figures = rack_figures(self.config, rack, self.runners)
        if figures.total_power is not None:
            return figures.total_power
        return float(sum(node["bmc_power"] or 0.0 for node in figures.nodes.values()))

    # ------------------------------------------------------------------ execution

    async def _run(self, plan: Plan, on_step: StepSink | None) -> CommandResult:
        command, origin = plan.command, plan.origin
        steps: list[CommandStep] = []
        bound = log.bind(command_id=command.id, device=command.device, action=command.action)

        def step(message: str, **data: Any) -> None:
            entry = CommandStep(self.clock.now(), message, data)
            steps.append(entry)
            bound.info("command_step", step=message)
            if on_step is not None:
                on_step(entry)

        running = CommandResult(
            command.id, command.device, command.action, CommandStatus.RUNNING, "running", at=self.clock.now()
        )
        if plan.verb not in {"status", "refresh"}:
            self._store(running)
            self._publish(command.device, running, origin)
            self._event(
                command.device,
                EventType.ACTION_STARTED,
                Severity.INFO,
                f"{command.action} on {command.device} by {origin.who}",
                {
                    "command_id": command.id,
                    "action": command.action,
                    "by": origin.who,
                    "via": origin.via,
                    "reason": command.reason,
                },
            )
            self._audit(command, origin, running)
            self._mark(command.device, f"action {command.action} ({command.id}) by {origin.who} started")
        try:
            message = await self._carry_out(plan, step)
            status = CommandStatus.SUCCEEDED
        except CommandRejectedError as exc:  # found on the device, before any command was sent (cycle of an off node)
            status, message = CommandStatus.REJECTED, str(exc)
            step(f"rejected: {message}")
        except (ActionFailedError, DeviceError) as exc:
            status, message = CommandStatus.FAILED, describe(exc)
            step(f"failed: {message}")
        except Exception as exc:  # noqa: BLE001 - a bug (a driver's or ours) must end the command, not leave it running
            # Left uncaught it would leave the command "running" for ever and its targets locked until a restart.
            bound.exception("command_bug")
            status, message = CommandStatus.FAILED, f"internal error: {exc!r}"
            step(f"failed: {message}")
        except asyncio.CancelledError:
            status, message = CommandStatus.INTERRUPTED, "daemon stopped during the action"
            step(message)
            self._finish(plan, status, message, steps)
            raise
        return self._finish(plan, status, message, steps)

    def _finish(self, plan: Plan, status: CommandStatus, message: str, steps: list[CommandStep]) -> CommandResult:
        command, origin = plan.command, plan.origin
        now = self.clock.monotonic()
        for lock in plan.locks:
            self._busy.pop(lock, None)
            self._last_action[lock] = now
        result = CommandResult(
            command.id, command.device, command.action, status, message, tuple(steps), at=self.clock.now()
        )
        self._store(result)
        self._publish(command.device, result, origin)
        if plan.verb not in {"status", "refresh"}:
            severity = Severity.INFO if status is CommandStatus.SUCCEEDED else Severity.WARNING
            self._event(
                command.device,
                EventType.ACTION_FINISHED,
                severity,
                f"{command.action} on {command.device}: {status}: {message}",
                {
                    "command_id": command.id,
                    "action": command.action,
                    "status": status.value,
                    "message": message,
                    "steps": len(steps),
                },
            )
            self._audit(command, origin, result)
            self._mark(command.device, f"action {command.action} ({command.id}) {status}: {message}")
            for switch in [*plan.switches, *plan.fallback]:
                switch.runner.poll_soon()  # refresh right after an action
        return result

    async def _carry_out(self, plan: Plan, step: Callable[..., None]) -> str:
        verb = plan.verb
        if verb == "refresh":
            self._runner(plan.command.device).poll_soon()
            step("poll requested")
            return "poll requested"
        if verb == "status":
            states = {s.label: (await s.runner.read_power(s.target)).value for s in plan.switches}
            step("observed", **states)
            return ", ".join(f"{k} {v}" for k, v in states.items())
        if verb in {"send", "break"}:
            return await self._console(plan, step)
        if plan.escalate and plan.fallback and verb in {"off", "soft_off", "cycle"}:
            return await self._escalating(plan, step)
        return await self._switch(plan.switches, verb, step)

    async def _switch(self, switches: Sequence[Switch], verb: str, step: Callable[..., None]) -> str:
        """Carry out on, off, cycle, soft_off, reset or diag on a set of switches, verified."""
        states = {s.label: await s.runner.read_power(s.target) for s in switches}
        step("observed", **{k: v.value for k, v in states.items()})
        if verb in {"on", "off"}:
            want = PowerState(verb)
            if all(state is want for state in states.values()):
                step(f"already {verb}: no command sent")
                return f"already {verb}"
            await self._set_all(switches, states, want, step)
            return f"{verb}, observed"
        if verb == "cycle":
            if all(state is PowerState.OFF for state in states.values()):
                raise CommandRejectedError("target is off: a cycle would only switch it on; send power on instead")
            await self._set_all(switches, states, PowerState.OFF, step)
            step(f"waiting {self.settings.cycle_off_time:g} s off")
            await self.clock.sleep(self.settings.cycle_off_time)
            await self._set_all(switches, dict.fromkeys(states, PowerState.OFF), PowerState.ON, step)
            return "cycled: off observed, on observed"
        (switch,) = switches  # soft_off, reset, diag only exist on a BMC chassis
        if verb == "soft_off":
            if states[switch.label] is PowerState.OFF:
                step("already off: no command sent")
                return "already off"
            await self._send(switch, PowerAction.SOFT_OFF, step)
            await self._await_state(switch, PowerState.OFF, self.settings.soft_off_timeout, step)
            return "soft off, observed off"
        if states[switch.label] is PowerState.OFF:
            raise ActionFailedError(f"{verb} refused: {switch.label} is off")
        await self._send(switch, PowerAction.RESET if verb == "reset" else PowerAction.DIAG, step)
        state = await switch.runner.read_power(switch.target)
        step("observed", **{switch.label: state.value})
        return f"{verb} accepted by the BMC; chassis {state}"

    async def _set_all(
        self, switches: Sequence[Switch], states: Mapping[str, PowerState], want: PowerState, step: Callable[..., None]
    ) -> None:
        """Switch every target to `want` (skipping those already there), then observe every one of them."""
        action = PowerAction.ON if want is PowerState.ON else PowerAction.OFF
        for switch in switches:
            if states.get(switch.label) is not want:
                await self._send(switch, action, step)
        await asyncio.gather(*(self._await_state(s, want, s.runner.spec.power_timeout, step) for s in switches))

    async def _console(self, plan: Plan, step: Callable[..., None]) -> str:
        console = self.consoles[plan.command.device]
        if plan.verb == "break":
            await console.send_break()
            step("BREAK sent")
            return "BREAK sent"
        text = str(plan.command.args["text"])
        await console.write(text.encode())
        step(f"sent {len(text)} characters")  # never the text: it may be a password
        return f"sent {len(text)} characters"

    async def _send(self, switch: Switch, action: PowerAction, step: Callable[..., None]) -> None:
        try:
            await switch.runner.send_power(switch.target, action)
        except DeviceRefusedError as exc:
            raise ActionFailedError(f"{switch.label} refused {action}: {exc}") from exc
        step(f"sent {action} to {switch.label}")

    async def _await_state(self, switch: Switch, want: PowerState, within: float, step: Callable[..., None]) -> None:
        """Poll the target until `want` is observed, waiting longer between checks, within `timeout`."""
        deadline = self.clock.monotonic() + within
        wait = self.settings.verify_interval
        while True:
            state = await switch.runner.read_power(switch.target)
            if state is want:
                step(f"observed {switch.label} {want}")
                return
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise ActionFailedError(f"{switch.label} still {state} after {within:g} s (wanted {want})")
            await self.clock.sleep(min(wait, remaining))
            wait = min(wait * 2, 10.0)

    async def _escalating(self, plan: Plan, step: Callable[..., None]) -> str:
        """soft_off → hard off via BMC → the node's PDU outlets, each when the previous did not converge."""
        (bmc,) = plan.switches
        verb = plan.verb
        try:
            if verb == "soft_off":
                try:
                    return await self._switch([bmc], "soft_off", step)
                except ActionFailedError as exc:
                    step(f"graceful shutdown did not converge ({exc}); escalating to hard off via BMC")
                return await self._switch([bmc], "off", step)
            return await self._switch([bmc], verb, step)
        except (DeviceError, ActionFailedError) as exc:
            step(
                f"BMC path failed ({describe(exc)}); escalating to PDU outlets "
                f"{', '.join(s.label for s in plan.fallback)}"
            )
        target_verb = "off" if verb == "soft_off" else verb
        result = await self._switch(plan.fallback, target_verb, step)
        return f"via PDU outlets: {result}"

    # ------------------------------------------------------------------ crash recovery

    async def recover_interrupted(self) -> None:
        """Report actions cut off by a crash as interrupted, with the observed state; never resume them."""
        for result in self.store.unfinished():
            runner = self.runners.get(result.device)
            observed = "unknown"
            if runner is not None:
                try:
                    async with self.clock.timeout(60):
                        await runner.wait_first_poll()
                except TimeoutError:
                    pass
                observed = ", ".join(f"{t} {s}" for t, s in runner.power.items()) or "unknown"
            step = CommandStep(
                self.clock.now(),
                f"daemon restarted; observed state: {observed}",
                {"observed": dict(runner.power) if runner else {}},
            )
            final = CommandResult(
                result.id,
                result.device,
                result.action,
                CommandStatus.INTERRUPTED,
                f"interrupted by a daemon restart; not resumed; observed: {observed}",
                (*result.steps, step),
                at=self.clock.now(),
            )
            self._store(final)
            spec = self._spec_or_none(result.device)
            if spec is not None:
                self.publisher.publish_result(spec, final)
                self._event(
                    result.device,
                    EventType.ACTION_FINISHED,
                    Severity.WARNING,
                    f"{result.action} on {result.device}: interrupted by a daemon restart",
                    {
                        "command_id": result.id,
                        "action": result.action,
                        "status": "interrupted",
                        "message": final.message,
                        "steps": len(final.steps),
                    },
                )
            self.audit.record(
                "command",
                command_id=result.id,
                device=result.device,
                action=result.action,
                status="interrupted",
                message=final.message,
            )
            log.warning("command_interrupted", command_id=result.id, device=result.device, observed=observed)

    # ------------------------------------------------------------------ reporting

    def _spec_or_none(self, device: str) -> DeviceSpec | None:
        try:
            return self.config.device(device)
        except KeyError:
            return None

    def _publish(self, device: str, result: CommandResult, origin: Origin) -> None:
        spec = self._spec_or_none(device)
        if spec is None:
            return
        self.publisher.publish_result(spec, result, origin.response_topic, origin.correlation)

    def _event(self, device: str, kind: EventType, severity: Severity, message: str, data: dict[str, Any]) -> None:
        spec = self._spec_or_none(device)
        if spec is not None:
            self.publisher.publish_event(spec, Event(kind, severity, message, self.clock.now(), "actions", data))

    def _audit(self, command: Command, origin: Origin, result: CommandResult) -> None:
        command = redacted(command)
        self.audit.record(
            "command",
            command_id=command.id,
            device=command.device,
            action=command.action,
            args=dict(command.args),
            requested_by=command.requested_by,
            origin={"via": origin.via, "who": origin.who, "role": origin.role.name.lower()},
            reason=command.reason,
            status=result.status.value,
            message=result.message,
            steps=[{"at": s.at.isoformat(), "message": s.message, "data": dict(s.data)} for s in result.steps],
        )

    def audit_denial(self, who: str, what: str, reason: str) -> None:
        """Record a refused request (authorization) in the audit log."""
        self.audit.record("denied", who=who, what=what, reason=reason)

    def _mark(self, device: str, text: str) -> None:
        if self.console_marker is not None:
            self.console_marker(device, text)

    def configure(self, config: Config) -> None:
        """Take a reloaded config (the runners dict is shared and updated by the supervisor)."""
        self.config = config
        self.settings = config.settings.actions

    async def wait_idle(self, devices: Sequence[str], grace: float) -> None:
        """Wait (up to `grace`) for actions touching these devices, before their runners are replaced."""
        touched = {cid for lock, cid in self._busy.items() if lock.split("/")[0] in devices}
        tasks = [self._inflight[cid] for cid in touched if cid in self._inflight]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)

    async def drain(self, grace: float) -> None:
        """At shutdown: refuse new commands, give in-flight actions `grace` seconds to finish."""
        self.closing = True
        pending = [*self._inflight.values(), *self._tasks]
        if pending:
            log.info("waiting_for_actions", count=len(pending), grace=grace)
            await asyncio.wait(pending, timeout=grace)

    async def aclose(self) -> None:
        """Stop what is still running (reported interrupted) and close the store and the audit log."""
        for task in [*self._inflight.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._inflight.values(), *self._tasks, return_exceptions=True)
        self.store.close()
        self.audit.close()
