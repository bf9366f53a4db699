"""Wall and CPU of a command's whole process tree, the processes it leaves behind included.

``/usr/bin/time`` counts only the children a process waits for: PySpark's driver never waits for
its JVM (the JVM exits by itself once the driver's pipe closes), so the JVM's CPU, most of a
Spark run's, is not in it. This runs the command as a *child subreaper* (Linux
``PR_SET_CHILD_SUBREAPER``): every orphaned descendant is re-parented here and reaped, so
``RUSAGE_CHILDREN`` holds the CPU of the whole tree::

    python benchmarks/tree_time.py -- keytrail scope OUT PATH --seed ID --engine spark

prints one line of JSON on stderr: wall seconds, user and system CPU seconds of the tree, the
largest peak RSS of any one process in it (GiB), the 1-minute load average at the start, and
the command's exit code (which it exits with).

``cpu_sampled_s``: the same tree's CPU read from ``/proc`` every 0.2 s, each process's own user +
system time at its last sample, summed. ``RUSAGE_CHILDREN`` misses a process nobody waited for:
PySpark's worker daemon ignores ``SIGCHLD``, so the kernel reaps its Python workers (pass 1's
adapters, most of a Spark scope's CPU) and their CPU is in no one's rusage. The sample misses
at most 0.2 s of each process's last moments (docs/performance.md, spark6).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36


def _tree_cpu(root: int) -> dict[tuple[int, int], float]:
    """Each descendant of ``root``'s own CPU seconds (user + system) now, by (pid, start time):
    a pid used again is another process."""
    parent: dict[int, int] = {}
    cpu: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d)] = int(fields[1])
        cpu[int(d)] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / tick)
    out = {}
    for pid, (started, seconds) in cpu.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root and pid != root:
            out[(pid, started)] = seconds
    return out


def main(argv: list[str]) -> int:
    cmd = argv[1:] if argv[:1] == ["--"] else argv
    if not cmd:
        print("usage: tree_time.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    load = os.getloadavg()[0]
    start = time.monotonic()
    seen: dict[tuple[int, int], float] = {}  # a process -> its CPU at its last sample
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            seen.update(_tree_cpu(os.getpid()))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = subprocess.call(cmd)
    while True:  # the orphans (the JVM, its Python workers): wait until every one has exited
        try:
            os.wait()
        except ChildProcessError:
            break
    wall = time.monotonic() - start
    running.clear()
    sampler.join()
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {
        "wall_s": round(wall, 1),
        "user_s": round(use.ru_utime, 1),
        "sys_s": round(use.ru_stime, 1),
        "cpu_s": round(use.ru_utime + use.ru_stime, 1),
        "cpu_sampled_s": round(sum(seen.values()), 1),
        "max_rss_gib": round(use.ru_maxrss / 2**20, 2),
        "load": load,
        "exit": code,
    }
    print(json.dumps(row), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
