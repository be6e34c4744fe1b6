"""Control-socket operations of the consoles: attach (watch or write), one-shot send/break, buffered output."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog

from rackd.console.config import ConsoleSettings
from rackd.console.frames import FrameError, Kind, encode, read_frame
from rackd.console.logformat import log_files, output_since
from rackd.console.session import Attachment, ConsoleSession
from rackd.control.peers import Peer
from rackd.control.protocol import ControlRequest, Role
from rackd.control.server import ControlServer, reply
from rackd.errors import RackdError, describe

log = structlog.get_logger(__name__)

DEFAULT_REPLAY_LINES = 100
MAX_HISTORY_BYTES = 32 << 20  # --since further back than this sends only the newest 32 MiB


class ConsoleOperations:
    """`console.attach` (viewers watch, operators write) and `console.send` (operators)."""

    def __init__(self, sessions: Mapping[str, ConsoleSession], settings: ConsoleSettings) -> None:
        """Serve these consoles."""
        self.sessions = sessions
        self.settings = settings

    def register(self, control: ControlServer) -> None:
        """Add the operations to the control socket."""
        control.register("console.attach", Role.VIEWER, self.attach)
        control.register("console.send", Role.OPERATOR, self.send)

    async def _session(self, request: ControlRequest, writer: asyncio.StreamWriter) -> ConsoleSession | None:
        node = (request.model_extra or {}).get("node")
        session = self.sessions.get(node) if isinstance(node, str) else None
        if session is None:
            known = ", ".join(sorted(self.sessions)) or "none configured"
            await reply(writer, ok=False, error=f"no console for node {node!r} (consoles: {known})")
        return session

    # ------------------------------------------------------------------ attach

    async def attach(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Stream a console: buffered output first, then live output (and input from a writer) until detach."""
        session = await self._session(request, writer)
        if session is None:
            return
        args: dict[str, Any] = request.model_extra or {}
        try:
            replay = await self._replay(session, args)
        except ValueError as exc:
            await reply(writer, ok=False, error=str(exc))
            return
        if not args.get("follow", True):
            await reply(writer, ok=True, node=session.spec.id, state=session.state)
            writer.write(encode(Kind.OUTPUT, replay) + encode(Kind.END, b"end of buffered output"))
            await writer.drain()
            return
        want_write = args.get("mode") == "write"
        notice = None
        if want_write and peer.role < Role.OPERATOR:
            want_write = False
            notice = f"read-only: writing needs role operator, {peer.describe()} has {peer.role.name.lower()}"
        attachment = session.attach(peer, want_write, bool(args.get("force")))
        # Nothing awaited between attach and the replay: the replay joins the live output without a gap.
        attachment.send(Kind.OUTPUT, replay)
        if want_write and not attachment.writing and session.writer is not None:
            notice = f"read-only: {session.writer.peer.describe()} is writing (attach with --force to take over)"
        if notice:
            attachment.notice(notice)
        try:
            await reply(
                writer,
                ok=True,
                node=session.spec.id,
                mode="write" if attachment.writing else "watch",
                state=session.state,
                who=session.who(),
                escape=self.settings.escape_char,
            )
            reason = await self._serve(session, attachment, reader, writer)
        except (ConnectionError, OSError):
            reason = "connection lost"
        finally:
            session.detach(attachment, "client gone")
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write(encode(Kind.END, reason.encode()))
            await writer.drain()

    async def _replay(self, session: ConsoleSession, args: Mapping[str, Any]) -> bytes:
        since = args.get("since")
        if since is not None:
            try:
                when = dt.datetime.fromisoformat(str(since))
            except ValueError:
                raise ValueError(f"since: {since!r} is not an ISO 8601 time") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            oldest = session.ring.oldest
            if oldest is None or when >= oldest:
                return session.ring.since(when)
            # Further back than the ring buffer: read the log files, off the event loop.
            files = log_files(session.log.path)
            fmt = self.settings.timestamp_format
            return await asyncio.to_thread(output_since, files, when, fmt, MAX_HISTORY_BYTES)
        tail = args.get("tail", DEFAULT_REPLAY_LINES)
        if not isinstance(tail, int) or tail < 0:
            raise ValueError(f"tail: expected a number of lines, got {tail!r}")
        return session.ring.tail(tail)

    async def _serve(
        self,
        session: ConsoleSession,
        attachment: Attachment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> str:
        sender = asyncio.create_task(self._send_frames(attachment, writer))
        receiver = asyncio.create_task(self._receive(session, attachment, reader))
        overflow = asyncio.create_task(attachment.overflowed.wait())
        tasks = {sender, receiver, overflow}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if overflow in done:
            return "cut off: this client fell too far behind the console's output"
        finished = done.pop()
        if finished.cancelled() or finished.exception() is not None:
            return "connection lost"
        result = finished.result()
        return result if isinstance(result, str) else "detached"

    async def _send_frames(self, attachment: Attachment, writer: asyncio.StreamWriter) -> str:
        while True:
            frame = await attachment.next_frame()
            writer.write(frame)
            await writer.drain()
            if frame[:1] == Kind.END.value:
                return "console service stopping"

    async def _receive(self, session: ConsoleSession, attachment: Attachment, reader: asyncio.StreamReader) -> str:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except asyncio.IncompleteReadError:
                return "client closed the connection"
            except FrameError as exc:
                return f"protocol error: {exc}"
            if kind is Kind.DETACH:
                return "detached"
            await self._handle(session, attachment, kind, payload)

    async def _handle(self, session: ConsoleSession, attachment: Attachment, kind: Kind, payload: bytes) -> None:
        if kind in (Kind.INPUT, Kind.BREAK) and not attachment.writing:
            writer = session.writer.peer.describe() if session.writer else "nobody"
            attachment.notice(f"read-only (writing: {writer}); input not sent")
            return
        try:
            if kind is Kind.INPUT:
                await session.write(payload)
            elif kind is Kind.BREAK:
                await session.send_break()
                attachment.notice("BREAK sent")
            elif kind is Kind.REPLAY:
                lines = int(payload) if payload.strip().isdigit() else DEFAULT_REPLAY_LINES
                attachment.notice(f"replay of the last {lines} lines:")
                attachment.send(Kind.OUTPUT, session.ring.tail(lines))
                attachment.notice("end of replay")
            elif kind is Kind.WHO:
                attachment.notice("attached:\n" + "\n".join(f"  {line}" for line in session.who()))
            elif kind is Kind.TAKE:
                if attachment.peer.role < Role.OPERATOR:
                    attachment.notice(f"writing needs role operator; you have {attachment.peer.role.name.lower()}")
                else:
                    session.take_write(attachment)
                    attachment.notice("you are now writing")
        except RackdError as exc:
            attachment.notice(describe(exc))

    # ------------------------------------------------------------------ send

    async def send(
        self, request: ControlRequest, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send text and/or a BREAK without attaching (scripts); refused while someone else writes, unless forced."""
        del reader
        session = await self._session(request, writer)
        if session is None:
            return
        args: dict[str, Any] = request.model_extra or {}
        text = args.get("data") or ""
        send_break = bool(args.get("break"))
        if not isinstance(text, str):
            await reply(writer, ok=False, error="data: expected text")
            return
        current = session.writer
        if current is not None and not args.get("force"):
            await reply(
                writer, ok=False, error=f"{current.peer.describe()} is attached writing; use --force to send anyway"
            )
            return
        if current is not None:
            current.notice(f"{peer.describe()} sent input to this console (--force)")
        try:
            if text:
                await session.write(text.encode())
            if send_break:
                await session.send_break()
        except RackdError as exc:
            await reply(writer, ok=False, error=describe(exc))
            return
        # Who sent how much, never what: it may be a password.
        size = len(text.encode())
        session.log.mark(f"input from {peer.describe()}: {size} bytes" + (", BREAK" if send_break else ""))
        log.info("console_input_sent", node=session.spec.id, peer=peer.describe(), size=len(text), brk=send_break)
        await reply(writer, ok=True, node=session.spec.id, sent=size, brk=send_break)
