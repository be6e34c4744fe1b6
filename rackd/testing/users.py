"""Running a test client as another local user (nobody) with setpriv, when this checkout allows it."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@functools.cache
def why_not_as_nobody() -> str | None:
    """None if `nobody` can run rackd from this checkout; else the reason a test must skip."""
    if os.geteuid() != 0:
        return "needs root to act as another user"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to act as another user"
    probe = subprocess.run(  # noqa: S603 - fixed argv
        [*AS_NOBODY, sys.executable, "-c", "import rackd"],
        capture_output=True,
        text=True,
        env=nobody_env(),
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        # e.g. a checkout under a private (0700) directory: nobody cannot read the code.
        return f"user nobody cannot import rackd from this checkout: {probe.stderr.strip()[-200:]}"
    return None


def nobody_env() -> dict[str, str]:
    """The environment for a client run as nobody: this interpreter's import path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
