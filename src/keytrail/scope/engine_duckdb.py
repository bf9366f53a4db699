"""The DuckDB engine: one machine, one pass of the ingest adapters over the trail.

The trail goes into a scratch case without the graph (:mod:`keytrail.scope.project`), the seeds
and the closure are resolved there (:mod:`keytrail.scope.closure`), and the selected records are
copied out of their input files (:mod:`keytrail.scope.output`). It is the default engine and the
oracle the Spark engine is tested against.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import UsageError
from keytrail.scope import closure as clo
from keytrail.scope import manifest, output
from keytrail.scope.gate import Gate
from keytrail.scope.project import LOCATIONS, project, with_raw
from keytrail.scope.vault_gate import VaultGate

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

#: ``e.time`` inside the window (NULL bound = open); a record without a time is kept.
WINDOW = (
    "(e.time IS NULL OR (($since IS NULL OR e.time >= $since) "
    "AND ($until IS NULL OR e.time <= $until)))"
)


@dataclass
class ScopeResult:
    """What ``keytrail scope`` did: the manifest it wrote and where."""

    out: Path
    manifest: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), **self.manifest}


def check_out(out: str | Path) -> Path:
    """The output folder must be new or empty (a scope never mixes with other files); checked
    before the trail is read, created only once there is something to write.

    Raises:
        UsageError: the folder exists and is not empty.
    """
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(
            f"{path}: exists and is not an empty folder; give a new folder for the scope"
        )
    return path


def prepare_out(out: str | Path) -> Path:
    path = check_out(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def scope_duckdb(
    out: str | Path,
    paths: Sequence[str | Path],
    seeds: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    inventory: Sequence[str | Path] = (),
    narrow: bool = True,
    gate: bool = True,
) -> ScopeResult:
    """Cut the records of the seeds' credential closure out of ``paths`` into ``out``.

    ``narrow=False`` loads the trail with the unchanged adapters (every column, every record's
    text): slower, and the oracle the narrow projection is tested against. ``gate=False``:
    every CloudTrail file is parsed (the oracle the gate is tested against; the manifest then
    has no ``gate`` and every file's ``rejected``).

    Raises:
        NotFoundError: a seed matches nothing (exit 1, with the closest ids).
        UsageError: ``out`` is not a new or empty folder.
    """
    if not seeds:
        raise UsageError("give at least one --seed")
    check_out(out)
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-") as tmp:
        held = Gate(list(dict.fromkeys(seeds)), vault=VaultGate()) if narrow and gate else None
        proj = project(
            Path(tmp) / "scratch.duckdb",
            paths,
            inventory=inventory,
            narrow=narrow,
            gate=held,
            beside=narrow,
        )
        try:
            store = proj.store
            resolved = clo.resolve_seeds(store, list(seeds))
            members = clo.closure(store)
            dest = prepare_out(out)
            params = {"since": since, "until": until}
            rows = clo.rows(store, LOCATIONS.format(selection=clo.selection_sql(WINDOW)), params)
        finally:
            # Closed before the kept records are read and copied: the projection is not needed
            # past here, and a closure that keeps most of the trail would otherwise hold its
            # buffers and the kept texts at once (peak RSS).
            proj.store.close()
        rows = with_raw(rows) if narrow else rows
        counts_out: dict[str, int] = {}
        for r in rows:
            counts_out[r["source"]] = counts_out.get(r["source"], 0) + 1
        outputs = output.write(
            dest, output.documents(output.pieces(rows), lambda p: Path(p).read_bytes())
        )
        doc = manifest.build(
            engine="duckdb",
            seeds=[s.as_dict() for s in resolved],
            since=since,
            until=until,
            closure=members,
            inputs=proj.inputs(),
            counts_out=counts_out,
            outputs=outputs,
            extra={"gate": held.as_dict()} if held is not None else None,
        )
        manifest.write(dest, doc)
    return ScopeResult(dest, doc)
