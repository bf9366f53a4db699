"""Pass 1 of ``keytrail scope --engine duckdb`` (the scratch case), timed in one process.

    python benchmarks/scope_pass1.py DATA side serial serial side

Each argument after DATA is one run of :func:`keytrail.scope.project.project` over ``DATA``
(with ``DATA/inventory.toml``): ``side`` loads the Vault and agent files on a worker thread beside
the CloudTrail pass (:mod:`keytrail.scope.side`), ``serial`` after it. Prints the 1-minute load
before each run, its wall time, the process CPU seconds (user + system, every thread) and, for
``side``, the worker's own wall and thread CPU. Alternate the modes: on a shared machine only
neighbouring runs compare.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from keytrail.scope import side as side_mod
from keytrail.scope.project import project


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str]) -> int:
    data, modes = Path(argv[0]), argv[1:]
    worker: dict[str, tuple[float, float]] = {}
    run = side_mod.SideLoad._run

    def timed(self: side_mod.SideLoad) -> None:
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            run(self)
        finally:
            worker["side"] = (time.monotonic() - wall, time.thread_time() - cpu)

    side_mod.SideLoad._run = timed  # type: ignore[method-assign]
    for mode in modes:
        worker.clear()
        with tempfile.TemporaryDirectory(prefix="scope-pass1-") as tmp:
            load = os.getloadavg()[0]
            wall, cpu = time.monotonic(), _cpu()
            proj = project(
                Path(tmp) / "s.duckdb",
                [data],
                inventory=[data / "inventory.toml"],
                side=mode == "side",
            )
            proj.store.close()
            line = f"load {load:.1f} {mode:6s} wall {time.monotonic() - wall:6.2f} s"
            line += f" cpu {_cpu() - cpu:6.2f} s"
            if "side" in worker:
                w, c = worker["side"]
                line += f"  worker wall {w:.2f} s, thread cpu {c:.2f} s"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
