"""`rackd sim console-server`: simulated consoles on loopback; one JSON line with their URLs; commands on stdin."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import stat
import sys

from rackd_sim.console_server.server import LOOPBACK, ConsoleServerSim

HELP = (
    "commands: on NAME | off NAME | panic NAME | oops NAME | xid NAME [CODE] | garbage NAME [N]"
    " | flood NAME [LINES] | drop NAME"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rackd sim console-server`."""
    parser = subparsers.add_parser(
        "console-server", help="simulated serial consoles on raw TCP, telnet and RFC 2217 ports", epilog=HELP
    )
    parser.add_argument("--name", action="append", default=[], help="console name (repeatable; default node1..N)")
    parser.add_argument("--count", type=int, default=1, help="number of consoles when no --name is given")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--baud", type=int, default=115200, help="output pacing (0: unpaced)")
    parser.add_argument("--boot-speed", type=float, default=1.0, help="scale of the boot log's delays (0: instant)")
    parser.add_argument("--off", action="store_true", help="start powered off (default: power on and boot)")
    parser.set_defaults(func=run)


def apply_command(sim: ConsoleServerSim, line: str) -> str:
    """Carry out one stdin command; returns what to print."""
    words = line.split()
    if len(words) < 2 or words[1] not in sim.endpoints:
        return HELP
    verb, endpoint, rest = words[0], sim[words[1]], words[2:]
    console = endpoint.console
    number = int(rest[0]) if rest and rest[0].isdigit() else None
    actions = {
        "on": console.power_on,
        "off": console.power_off,
        "panic": console.inject_panic,
        "oops": console.inject_oops,
        "xid": lambda: console.inject_xid(number or 79),
        "garbage": lambda: console.inject_garbage(number or 256),
        "flood": lambda: console.flood(number or 1000),
        "drop": endpoint.drop_connections,
    }
    action = actions.get(verb)
    if action is None:
        return HELP
    action()
    return f"ok {verb} {words[1]}"


def _stdin_is_stream() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(sys.stdin.fileno()))


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM/SIGINT or stdin closes after an `exit`."""
    names = args.name or [f"node{n}" for n in range(1, max(1, args.count) + 1)]
    sim = ConsoleServerSim(names, host=args.host, baud=args.baud, boot_speed=args.boot_speed)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not args.off:
        for endpoint in sim.endpoints.values():
            endpoint.console.power_on()
    print(json.dumps(sim.describe()), flush=True)
    reader = asyncio.StreamReader()
    if _stdin_is_stream():
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    else:
        reader.feed_eof()  # /dev/null or a file: no commands (epoll cannot watch regular files)

    async def commands() -> None:
        async for raw in reader:
            line = raw.decode(errors="replace").strip()
            if line == "exit":
                stop.set()
                return
            if line:
                print(apply_command(sim, line), flush=True)

    task = asyncio.create_task(commands())
    await stop.wait()
    task.cancel()
    await sim.close()


def run(args: argparse.Namespace) -> int:
    """Entry point of `rackd sim console-server`."""
    asyncio.run(serve(args))
    return 0
