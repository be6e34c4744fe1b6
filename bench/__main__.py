"""Run every benchmark in turn: `.venv/bin/python -m bench [--quick] [--out DIR]` (each also runs alone)."""

from __future__ import annotations

import subprocess
import sys

from bench.report import arguments

SCRIPTS = ("publishing", "pdu_polling", "bmc_polling", "consoles", "site")


def main() -> None:
    """Each script in its own process (a fresh interpreter: no CPU or threads carried over), defaults unless --quick."""
    args = arguments(__doc__ or "").parse_args()
    flags = ["--out", str(args.out)] + (["--quick"] if args.quick else [])
    failed = [
        name
        for name in SCRIPTS
        if subprocess.run([sys.executable, "-m", f"bench.{name}", *flags], check=False).returncode != 0
    ]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
