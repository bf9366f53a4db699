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
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


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
    code = subprocess.call(cmd)
    while True:  # the orphans (the JVM, its Python workers): wait until every one has exited
        try:
            os.wait()
        except ChildProcessError:
            break
    wall = time.monotonic() - start
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {
        "wall_s": round(wall, 1),
        "user_s": round(use.ru_utime, 1),
        "sys_s": round(use.ru_stime, 1),
        "cpu_s": round(use.ru_utime + use.ru_stime, 1),
        "max_rss_gib": round(use.ru_maxrss / 2**20, 2),
        "load": load,
        "exit": code,
    }
    print(json.dumps(row), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
