"""A small real filesystem for disk-full tests: a tmpfs mounted for the test, and a filler that reaches ENOSPC."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PAGE = 4096


@contextlib.contextmanager
def mounted_tmpfs(size: str, prefix: str = "rackd-full-") -> Iterator[Path]:
    """A fresh tmpfs of `size` (e.g. "512k") mounted on a new directory (needs root); unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix=prefix))
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)]
    subprocess.run(mount, check=True)  # noqa: S603 - fixed argv (util-linux mount on PATH)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)  # noqa: S603, S607 - as above
        shutil.rmtree(mount_point, ignore_errors=True)


def fill(disk: Path) -> Path:
    """Write zeros to `disk/filler` until the filesystem is full; returns the filler (delete it to free space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * PAGE)  # unbuffered: ENOSPC arrives here, not at close
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
    finally:
        os.close(fd)
