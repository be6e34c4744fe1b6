"""What the unit's sandbox takes away, checked where the kernel lets a test do it without systemd as PID 1."""

from __future__ import annotations

import errno
import json
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rackd.testing.broker import Mosquitto

PR_SET_MDWE = 65  # linux/prctl.h, Linux >= 6.3: the kernel's own form of MemoryDenyWriteExecute=
PR_MDWE_REFUSE_EXEC_GAIN = 1

# Run in a child that locked itself with PR_SET_MDWE and exec'd Python afresh (the lock survives exec):
# everything rackd loads in the daemon must work without writable+executable memory.
PROBE = textwrap.dedent(
    """
    import ctypes, sqlite3, ssl, sys
    libc = ctypes.CDLL(None)
    assert libc.prctl(66, 0, 0, 0, 0) == 1, "PR_GET_MDWE (66): the lock was not inherited"
    import asyncssh, aiomqtt, rackd.console.service, rackd.runtime.supervisor, rackd_ipmi.driver, rackd_snmp.driver
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    encryptor = Cipher(algorithms.AES(b"k" * 16), modes.CFB(b"i" * 16)).encryptor()
    assert encryptor.update(b"secret") != b"secret"
    ssl.create_default_context()
    sqlite3.connect(":memory:").execute("CREATE TABLE t (x)")
    assert ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)() == 7  # libffi closures without W+X pages
    print("ok")
    """
)

WRAPPER = textwrap.dedent(
    f"""
    import ctypes, os, sys
    if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
        sys.exit(77)
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
    """
)


def _kernel_has_mdwe() -> bool:
    # Probe in a child: the lock cannot be undone, and this test process must stay as it is.
    child = subprocess.run([sys.executable, "-c", WRAPPER, "pass"], capture_output=True, timeout=60, check=False)
    return child.returncode == 0


def test_rackd_runs_without_writable_executable_memory() -> None:
    if not _kernel_has_mdwe():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): MemoryDenyWriteExecute= is not testable here")
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_lock_is_real() -> None:
    # The probe above is only meaningful if the kernel refuses W+X mappings once locked.
    if not _kernel_has_mdwe():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    wx = textwrap.dedent(
        """
        import mmap
        try:
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except PermissionError:
            print("refused")
        else:
            print("allowed")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, wx], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "refused", result.stderr


# RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 is a seccomp filter on socket(2): the same filter, installed
# by the child itself (no privileges needed with no_new_privs), then the real daemon exec'd under it.
FAMILIES = textwrap.dedent(
    """
    import ctypes, os, struct, sys
    NR_SOCKET, ALLOW, ERRNO_EAFNOSUPPORT = 41, 0x7FFF0000, 0x00050000 | 97  # x86_64
    LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
    program = [
        (LD_ABS, 0, 0, 0),                   # seccomp_data.nr
        (JEQ, 0, 5, NR_SOCKET),              # not socket(): allow
        (LD_ABS, 0, 0, 16),                  # args[0]: the address family
        (JEQ, 3, 0, 1),                      # AF_UNIX
        (JEQ, 2, 0, 2),                      # AF_INET
        (JEQ, 1, 0, 10),                     # AF_INET6
        (RET, 0, 0, ERRNO_EAFNOSUPPORT),     # anything else, AF_NETLINK included
        (RET, 0, 0, ALLOW),
    ]
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) != 0:
        sys.exit(77)
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the filter below uses x86_64 syscall numbers")
def test_the_address_family_filter_refuses_netlink() -> None:
    probe = textwrap.dedent(
        """
        import socket
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
        except OSError as exc:
            print(exc.errno)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", FAMILIES, sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == str(errno.EAFNOSUPPORT), result.stderr


@pytest.mark.integration
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the filter uses x86_64 syscall numbers")
def test_daemon_works_with_unix_and_inet_sockets_only(broker: Mosquitto, tmp_path: Path) -> None:
    # The broker is named, not numbered, so name resolution runs under the filter too.
    config = tmp_path / "rackd.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [site]
            name = "lab"
            [daemon]
            instance = "sandbox"
            state_dir = "{tmp_path}/state"
            console_log_dir = "{tmp_path}/console"
            control_socket = "{tmp_path}/control.sock"
            [mqtt]
            url = "mqtt://localhost:{broker.port}"
            [defaults]
            poll_interval = 0.3
            [[node]]
            id = "gpu-01"
            rack = "r1"
            bmc = {{ driver = "fake", host = "gpu-01" }}
            """
        )
    )
    log_path = tmp_path / "daemon.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                FAMILIES,
                sys.executable,
                "-m",
                "rackd",
                "--log-format",
                "json",
                "run",
                "-c",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        events = wait_for_log(log_path, "device_available", process)
        assert "mqtt_connected" in events
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_log(path: Path, event: str, process: subprocess.Popen[bytes], within: float = 30) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        events = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line)["event"])
            except (ValueError, KeyError):
                events.append(line)
        if event in events:
            return events
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{event} not logged (exit {process.poll()}): {events[-10:]}")
        time.sleep(0.05)  # polling another process's log file under a deadline
