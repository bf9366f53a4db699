"""`python -m keytrail` runs the command line."""

from __future__ import annotations

from keytrail.cli.main import main

raise SystemExit(main())
