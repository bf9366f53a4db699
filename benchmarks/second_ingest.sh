#!/bin/bash
# A second ingest into a big case, three ways, with /usr/bin/time (wall, user, sys, max RSS) and
# the 1-minute load average before and after each run (docs/performance.md, "Second ingest"):
#   incremental   - into a copy of BASE (derived before by this code: derive_incr applies)
#   full rebuild  - into a copy of BASE with its derived.* case_meta keys removed (what every
#                   second ingest did before: whole-case de-duplication and derive)
#   empty case    - the same files into a new case
# The cases stay in WORKDIR for benchmarks/case_digest.py (incremental --against full rebuild).
#
#   benchmarks/second_ingest.sh BASE.duckdb WORKDIR LABEL FILE_OR_DIR...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
KT=${KEYTRAIL:-$here/.venv/bin/keytrail}
PY=${PYTHON:-$here/.venv/bin/python}
base=$1 work=$2 label=$3
shift 3
mkdir -p "$work"
run() { # title case files...
  local title=$1 case=$2
  shift 2
  local l0 r
  l0=$(cut -d' ' -f1 /proc/loadavg)
  r=$({ /usr/bin/time -f "%e %U %S %M" "$KT" ingest "$case" "$@" -q --no-snapshot >/dev/null; } 2>&1 | tail -1)
  echo "$label $title: wall user sys maxrss_kb = $r; load $l0 -> $(cut -d' ' -f1 /proc/loadavg)"
}
rm -f "$work/$label"-{inc,full,empty}.duckdb "$work/$label"-{inc,full,empty}.duckdb.wal
cp "$base" "$work/$label-inc.duckdb"
sync # else the first checkpoint writes the copy's dirty pages inside the timed run
run incremental "$work/$label-inc.duckdb" "$@"
cp "$base" "$work/$label-full.duckdb"
"$PY" -c "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(\"DELETE FROM case_meta WHERE starts_with(key, 'derived.')\"); c.close()" "$work/$label-full.duckdb"
sync
run "full rebuild" "$work/$label-full.duckdb" "$@"
run "empty case" "$work/$label-empty.duckdb" "$@"
