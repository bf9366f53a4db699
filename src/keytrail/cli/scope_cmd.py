"""``keytrail scope``: cut an investigation out of a trail too big to ingest (DuckDB or Spark).

A thin wrapper over :mod:`keytrail.scope`: the JSON output is the manifest it wrote (plus
``out``); the text output says what was kept and where. Log-derived text goes through
:func:`keytrail.safetext.shown`.
"""

from __future__ import annotations

import argparse
import sys

from keytrail.cli.graph_cmd import _time
from keytrail.errors import UsageError
from keytrail.safetext import shown


def _add_scope(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "out", help="output folder (new or empty): one folder per source and manifest.json"
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="log files or folders (Spark: any path Spark reads, s3a://, hdfs://, abfss://)",
    )
    p.add_argument(
        "--seed",
        action="append",
        default=[],
        required=True,
        metavar="ID",
        help="credential id (AWS key, Vault token accessor, HMAC'd or not), principal ARN, "
        "agent id or inventory name, or human; repeatable",
    )
    p.add_argument(
        "--since", help="keep events at or after this time (lineage events are always kept)"
    )
    p.add_argument("--until", help="keep events at or before this time")
    p.add_argument(
        "--inventory",
        action="append",
        default=[],
        metavar="FILE",
        help="agent inventory (TOML, JSON or CSV) naming agents and their identities; repeatable",
    )
    p.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="duckdb (default, one machine) or spark (PySpark: pip install 'keytrail[spark]')",
    )
    p.add_argument(
        "--spark-master",
        default=None,
        metavar="URL",
        help="Spark master URL (default: the one spark-submit set, else local[*])",
    )
    p.add_argument("--json", action="store_true", help="print the manifest on stdout")


def run_scope(args: argparse.Namespace) -> int:
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    if since and until and since > until:
        raise UsageError("--since is after --until")
    if args.engine == "spark":
        from keytrail.scope.engine_spark import scope_spark

        result = scope_spark(
            args.out,
            args.paths,
            args.seed,
            since=since,
            until=until,
            inventory=args.inventory,
            master=args.spark_master,
        )
    else:
        if args.spark_master:
            raise UsageError("--spark-master needs --engine spark")
        from keytrail.scope.engine_duckdb import scope_duckdb

        result = scope_duckdb(
            args.out, args.paths, args.seed, since=since, until=until, inventory=args.inventory
        )
    doc = result.manifest
    if args.json:
        from keytrail.cli.main import print_json

        print_json(result.as_dict())
        return 0
    err = sys.stderr
    for s in doc["seeds"]:
        print(
            f"seed {shown(s['seed'], 200)} ({s['matched_as']}): "
            f"{len(s['credentials'])} credentials",
            file=err,
        )
    print(f"closure: {len(doc['closure'])} credentials", file=err)
    for c in doc["closure"]:
        print(
            f"  {c['relation']:<20} {shown(c['credential_id'], 200)}  {shown(c['why'], 300)}",
            file=err,
        )
    skipped = [i for i in doc["inputs"] if i["status"] in ("skipped", "failed")]
    for i in skipped:
        print(
            f"  {i['status']:>8}  {shown(i['path'], 300)}: {shown(i['note'] or '', 300)}", file=err
        )
    counts = ", ".join(
        f"{s} {c['events_out']:,}/{c['events_in']:,}" for s, c in doc["counts"].items()
    )
    print(
        f"keytrail: scope ({doc['engine']}) kept events {counts} (out/in); "
        f"{len(doc['outputs'])} files and "
        f"manifest.json in {result.out}; {len(skipped)} input files skipped",
        file=err,
    )
    print(f"  load it with: keytrail ingest CASE {result.out}", file=err)
    return 0


COMMANDS = {
    "scope": (
        "cut the records of a credential closure out of a large trail (DuckDB or Spark)",
        _add_scope,
        run_scope,
    ),
}
