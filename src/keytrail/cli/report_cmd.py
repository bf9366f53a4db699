"""Subcommands for the report layer (being built; see the issue tracker)."""

from __future__ import annotations

from typing import Any

COMMANDS: dict[str, Any] = {}
