"""`python -m rackd` is the `rackd` command."""

from rackd.cli.main import main

raise SystemExit(main())
