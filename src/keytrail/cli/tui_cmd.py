"""``keytrail tui``, ``serve`` and ``demo``: the explorer in a terminal, in a browser, on the sample.

Textual and textual-serve are imported inside the run functions only, so the CLI
(and ``keytrail --help``) never loads the UI.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from keytrail.errors import InputError
from keytrail.safetext import shown

DEMO_INVENTORY_NAMES = ("inventory.toml", "inventory.json", "inventory.csv")


def _add_case(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case file (DuckDB), opened read-only")


def _check_case(case: str) -> None:
    from keytrail.store.case import CaseStore

    CaseStore.open(
        case
    ).close()  # a clear message for a missing or foreign file, before any UI starts


def run_tui(args: argparse.Namespace) -> int:
    _check_case(args.case)
    from keytrail.tui.app import run

    return run(args.case)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _add_serve(p: argparse.ArgumentParser) -> None:
    _add_case(p)
    p.add_argument("--port", type=int, default=8566, help="port on 127.0.0.1 (default 8566)")
    p.add_argument(
        "--max-sessions",
        type=_positive,
        default=4,
        metavar="N",
        help="explorer sessions (browser tabs) at once; more are refused (default 4)",
    )


def run_serve(args: argparse.Namespace) -> int:
    _check_case(args.case)
    from keytrail.web.serve import serve

    return serve(args.case, args.port, args.max_sessions)


def sample_dir() -> Path:
    """The sample incident: ``$KEYTRAIL_SAMPLE_DATA``, the copy shipped in the wheel, or a source checkout's."""
    env = os.environ.get("KEYTRAIL_SAMPLE_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates.append(
        here.parents[1] / "sample_data" / "incident"
    )  # installed: keytrail/sample_data
    candidates.append(here.parents[3] / "sample_data" / "incident")  # source checkout
    candidates.append(Path.cwd() / "sample_data" / "incident")
    for c in candidates:
        if c.is_dir():
            return c
    raise InputError(
        "sample data not found (looked in " + ", ".join(str(c) for c in candidates) + "). "
        "Run keytrail demo from a source checkout, or set KEYTRAIL_SAMPLE_DATA to the sample_data/incident folder."
    )


def demo_case_path() -> Path:
    """``$KEYTRAIL_DEMO_CASE``, else ``$XDG_CACHE_HOME/keytrail/demo.duckdb`` (``~/.cache`` by default)."""
    env = os.environ.get("KEYTRAIL_DEMO_CASE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "keytrail" / "demo.duckdb"


def _demo_ready(case: Path) -> bool:
    if not case.exists():
        return False
    from keytrail.errors import KeytrailError
    from keytrail.store.case import CaseStore

    try:
        with CaseStore.open(case) as store:
            return store.meta("finalized") == "true"
    except KeytrailError:
        return False


def build_demo(rebuild: bool = False, quiet: bool = False) -> Path:
    """Ingest the sample incident (with its inventory) into the demo case unless it is there already."""
    case = demo_case_path()
    if rebuild or not _demo_ready(case):
        from keytrail.ingest.runner import ingest

        src = sample_dir()
        inventory = [str(src / n) for n in DEMO_INVENTORY_NAMES if (src / n).is_file()]
        paths = [
            str(p)
            for p in sorted(src.iterdir())
            if p.name not in DEMO_INVENTORY_NAMES
            and not p.name.startswith(".")
            and p.name.lower() not in ("readme.md", "readme")
        ]
        policies = (
            src.parent / "policies"
        )  # the sample's policy snapshot: the potential blast radius
        if policies.is_dir():
            paths.append(str(policies))
        case.parent.mkdir(parents=True, exist_ok=True)
        for stale in (case, case.with_name(case.name + ".wal")):
            if stale.exists():
                stale.unlink()
        if not quiet:
            print(
                f"keytrail: building the demo case from {shown(str(src))} into {shown(str(case))}",
                file=sys.stderr,
            )
        summary = ingest(case, paths, inventory=inventory)
        from keytrail.analysis.snapshot import refresh_case

        refresh_case(case)
        if not quiet:
            print(
                f"keytrail: {summary.events_in_case:,} events, {summary.rejected:,} rejected",
                file=sys.stderr,
            )
    return case


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-tui", action="store_true", help="build the case, print its path and info, exit"
    )
    p.add_argument(
        "--rebuild", action="store_true", help="re-ingest the sample even if the case exists"
    )


def run_demo(args: argparse.Namespace) -> int:
    case = build_demo(rebuild=args.rebuild)
    if args.no_tui:
        print(case)
        from keytrail.cli.ingest_cmd import run_info

        return run_info(argparse.Namespace(case=str(case), json=False))
    from keytrail.tui.app import run

    return run(case)


COMMANDS = {
    "tui": ("explore a case in the terminal (read-only)", _add_case, run_tui),
    "serve": ("serve the explorer to a browser on 127.0.0.1 (read-only)", _add_serve, run_serve),
    "demo": ("build the sample incident case (once) and open the explorer", _add_demo, run_demo),
}
