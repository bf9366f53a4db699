"""keytrail: an offline forensic explorer for AI agents and non-human identities.

The package root stays import-light on purpose: `import keytrail` must not pull in
DuckDB, networkx or Textual, so the CLI starts fast and the import-hygiene test can
check which layers load which libraries.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
