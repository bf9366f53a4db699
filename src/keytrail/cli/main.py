"""The ``keytrail`` command: argument parsing and dispatch only.

Each subcommand lives in a module of this package exposing ``COMMANDS``: a dict of
``name -> (help, add_arguments, run)``. Command modules keep heavy imports (duckdb,
networkx, textual) inside ``run`` so ``keytrail --help`` stays fast and the engine
never loads the UI. Errors derived from :class:`keytrail.errors.KeytrailError` are
printed to stderr as one message and mapped to their exit codes (0 done, 1 nothing
found for the id, 2 usage or input error, 3 rejects under ``--strict``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from keytrail import __version__
from keytrail.errors import KeytrailError, NotFoundError
from keytrail.safetext import shown, shown_lines

#: Modules contributing subcommands, in help order.
COMMAND_MODULES = (
    "keytrail.cli.ingest_cmd",
    "keytrail.cli.graph_cmd",
    "keytrail.cli.findings_cmd",
    "keytrail.cli.report_cmd",
    "keytrail.cli.tui_cmd",
    "keytrail.cli.scope_cmd",
)

Runner = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keytrail",
        description="Offline forensic explorer for AI agents and non-human identities.",
        epilog="Start with: keytrail demo   (builds the sample incident case and opens the explorer)",
    )
    parser.add_argument("--version", action="version", version=f"keytrail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        commands: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = (
            module.COMMANDS
        )
        for name, (help_text, add_arguments, run) in commands.items():
            p = sub.add_parser(name, help=help_text, description=help_text)
            add_arguments(p)
            p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Runner | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return run(args)
    except NotFoundError as e:
        print(f"keytrail: {shown_lines(e.msg)}", file=sys.stderr)
        if e.suggestions:  # ids from the case: hostile text, one per line
            print(
                "closest matches:\n  " + "\n  ".join(shown(s, 400) for s in e.suggestions),
                file=sys.stderr,
            )
        return e.exit_code
    except KeytrailError as e:
        print(f"keytrail: {shown_lines(e.msg)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("keytrail: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def print_json(doc: Any) -> None:
    """The one JSON document a ``--json`` command writes to stdout."""
    import json
    from datetime import date, datetime

    from keytrail.timefmt import format_utc

    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return format_utc(o)
        if isinstance(o, date):
            return o.isoformat()
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if hasattr(o, "as_dict"):
            return o.as_dict()
        return str(o)

    from keytrail.safetext import json_text

    sys.stdout.write(
        json_text(json.dumps(doc, indent=2, default=default, ensure_ascii=False)) + "\n"
    )
