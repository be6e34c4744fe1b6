"""What the unit's sandbox takes away, checked where the kernel lets a test do it without systemd as PID 1."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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
