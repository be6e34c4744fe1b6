"""`rackd console NODE`: attach to a console (raw terminal, escapes), or tail/follow/send/break for scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import stat
import sys
import termios
import tomllib
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from rackd.console.frames import Kind, encode, read_frame
from rackd.control.client import ControlError, call, open_operation

DEFAULT_SOCKET = Path("/run/rackd/control.sock")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd console`."""
    parser = subparsers.add_parser(
        "console",
        help="attach to a node's serial console (or --tail/--follow/--send/--break it)",
        description="Interactive by default: the terminal is put in raw mode and every key goes to the console. "
        "Escapes (default '&'): '&.' detach, '&B' send BREAK, '&L' replay recent output, '&W' who is attached, "
        "'&F' take over writing, '&?' help, '&&' a literal '&'.",
    )
    parser.add_argument("node", help="node id from the config")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="find the control socket from this config")
    where.add_argument("--socket", type=Path, help=f"the daemon's control socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--tail", type=int, metavar="N", help="print the last N lines of buffered output")
    parser.add_argument("--since", metavar="TIME", help="output since TIME (ISO 8601, or 30s/5m/2h/1d ago)")
    parser.add_argument("--follow", action="store_true", help="keep printing output as it arrives (read-only)")
    parser.add_argument("--send", metavar="TEXT", help="send TEXT followed by Enter (CR), then exit")
    parser.add_argument("--no-enter", action="store_true", help="with --send: do not add the CR")
    parser.add_argument("--break", dest="send_break", action="store_true", help="send a serial BREAK, then exit")
    parser.add_argument("--force", action="store_true", help="take over writing from whoever writes now")
    parser.add_argument("--watch", action="store_true", help="attach read-only")
    parser.set_defaults(func=run)


def socket_path(args: argparse.Namespace) -> Path:
    """--socket, else [daemon] control_socket of --config (or RACKD_DAEMON__CONTROL_SOCKET), else the default."""
    if args.socket is not None:
        return Path(args.socket)
    env = os.environ.get("RACKD_DAEMON__CONTROL_SOCKET")
    if env:
        return Path(env)
    if args.config is not None:
        # Only this key is read: an operator may not be allowed to read the secrets the full config names.
        with Path(args.config).open("rb") as file:
            raw = tomllib.load(file)
        value = raw.get("daemon", {}).get("control_socket")
        if isinstance(value, str):
            return Path(value)
    return DEFAULT_SOCKET


def parse_since(text: str, now: dt.datetime | None = None) -> str:
    """An ISO 8601 UTC time from an absolute time or a relative `30s`/`5m`/`2h`/`1d`."""
    match = _RELATIVE.match(text.strip())
    if match:
        moment = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        return moment.isoformat()
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since {text!r}: expected ISO 8601 or e.g. 30s, 5m, 2h, 1d") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()


def run(args: argparse.Namespace) -> int:
    """Entry point of `rackd console`."""
    path = socket_path(args)
    try:
        since = parse_since(args.since) if args.since else None
    except argparse.ArgumentTypeError as exc:
        print(f"rackd: {exc}", file=sys.stderr)
        return 2
    try:
        if args.send is not None or args.send_break:
            text = None if args.send is None else args.send + ("" if args.no_enter else "\r")
            asyncio.run(send(path, args.node, text, args.send_break, args.force))
            return 0
        if not args.follow and (args.tail is not None or since is not None):
            return asyncio.run(stream_output(path, args.node, args.tail, since, follow=False))
        if args.follow:
            return asyncio.run(stream_output(path, args.node, args.tail, since, follow=True))
        return asyncio.run(interactive(path, args.node, args.tail, write=not args.watch, force=args.force))
    except ControlError as exc:
        print(f"rackd: {exc}", file=sys.stderr)
        return 1


async def send(path: Path, node: str, text: str | None, send_break: bool, force: bool) -> None:
    """One-shot input and/or BREAK."""
    await call(path, "console.send", node=node, data=text or "", force=force, **{"break": send_break})


def _notice(out: BinaryIO, payload: bytes) -> None:
    out.write(b"\r\n[rackd: " + payload.replace(b"\n", b"\r\n") + b"]\r\n")
    out.flush()


async def stream_output(path: Path, node: str, tail: int | None, since: str | None, follow: bool) -> int:
    """Print buffered (and with `follow`, live) output to stdout, bytes as they are."""
    arguments: dict[str, Any] = {"node": node, "follow": follow, "mode": "watch"}
    if tail is not None:
        arguments["tail"] = tail
    if since is not None:
        arguments["since"] = since
    reader, writer, _ = await open_operation(path, "console.attach", **arguments)
    out = sys.stdout.buffer
    try:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except asyncio.IncompleteReadError:
                return 0
            if kind is Kind.OUTPUT:
                out.write(payload)
                out.flush()
            elif kind is Kind.NOTICE and follow:
                print(f"[rackd: {payload.decode(errors='replace')}]", file=sys.stderr)
            elif kind is Kind.END:
                return 0
    finally:
        writer.close()


class EscapeParser:
    """Splits keystrokes into console input and escape commands (conman-style: the escape char, then a key)."""

    COMMANDS = {ord("."): Kind.DETACH, ord("b"): Kind.BREAK, ord("l"): Kind.REPLAY, ord("w"): Kind.WHO}
    COMMANDS |= {ord("f"): Kind.TAKE}

    def __init__(self, escape: str) -> None:
        """Use `escape` (one ASCII character)."""
        self.escape = ord(escape)
        self._pending = False

    def feed(self, data: bytes) -> list[tuple[Kind | str, bytes]]:
        """Frames to send (kind, payload), or ('help', b'') for the local help text, in order."""
        actions: list[tuple[Kind | str, bytes]] = []
        typed = bytearray()

        def flush() -> None:
            if typed:
                actions.append((Kind.INPUT, bytes(typed)))
                typed.clear()

        for byte in data:
            if self._pending:
                self._pending = False
                command = self.COMMANDS.get(byte | 0x20 if 0x41 <= byte <= 0x5A else byte)
                if byte == self.escape:
                    typed.append(byte)
                elif command is not None:
                    flush()
                    actions.append((command, b""))
                elif byte == ord("?"):
                    flush()
                    actions.append(("help", b""))
                else:
                    typed += bytes((self.escape, byte))
            elif byte == self.escape:
                self._pending = True
            else:
                typed.append(byte)
        flush()
        return actions


def _stdin_watchable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


async def interactive(path: Path, node: str, tail: int | None, write: bool, force: bool) -> int:
    """Attach: raw terminal, keys to the console, output to the screen, escapes for commands."""
    arguments: dict[str, Any] = {"node": node, "mode": "write" if write else "watch", "force": force}
    if tail is not None:
        arguments["tail"] = tail
    reader, writer, first = await open_operation(path, "console.attach", **arguments)
    escape = str(first.get("escape", "&"))
    out = sys.stdout.buffer
    stdin = sys.stdin.fileno()
    loop = asyncio.get_running_loop()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    parser = EscapeParser(escape)
    help_text = (
        f"{escape}. detach  {escape}B BREAK  {escape}L replay  {escape}W who  {escape}F take over writing  "
        f"{escape}{escape} send {escape}"
    ).encode()

    def on_keys() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            writer.write(encode(Kind.DETACH))
            return
        for kind, payload in parser.feed(data):
            if kind == "help":
                _notice(out, help_text)
            elif isinstance(kind, Kind):
                writer.write(encode(kind, payload))

    watching = _stdin_watchable(stdin)
    try:
        if saved is not None:
            tty.setraw(stdin, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept, not flushed
        if watching:
            loop.add_reader(stdin, on_keys)
        # Said only now: from here on every key reaches the console.
        _notice(out, f"attached to {node} ({first.get('mode')}); {escape}. detaches, {escape}? for help".encode())
        return await _show(reader, out, _notice)
    finally:
        if watching:
            loop.remove_reader(stdin)
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _show(reader: asyncio.StreamReader, out: BinaryIO, notice: Callable[[BinaryIO, bytes], None]) -> int:
    while True:
        try:
            kind, payload = await read_frame(reader)
        except asyncio.IncompleteReadError:
            notice(out, b"connection to rackd closed")
            return 1
        if kind is Kind.OUTPUT:
            out.write(payload)
            out.flush()
        elif kind is Kind.NOTICE:
            notice(out, payload)
        elif kind is Kind.END:
            notice(out, payload)
            return 0
