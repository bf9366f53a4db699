"""Which paths an ingest reads: regular files only, everything else listed with the reason.

Evidence directories are hostile too: a self-referential symlink (``ln -s self dir/self``)
used to stop the walk with a ``RuntimeError`` traceback, and a FIFO would block the read
forever. Here nothing that is not a regular, readable file is ever opened; each such path
is returned with a plain reason and the runner lists it as ``skipped``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from keytrail.errors import InputError


def expand_paths(
    paths: Iterable[str | Path], skipped: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Regular files under the given paths, in a stable order (directories walked recursively).

    Anything else found (symlink loops, dangling links, FIFOs, sockets, devices, unreadable
    directories, links to directories, which are not followed) is appended to ``skipped`` with the
    reason instead of being opened: a FIFO would block the ingest forever.

    Raises:
        InputError: a path does not exist.
    """
    out: list[Path] = []
    bad: list[tuple[Path, str]] = [] if skipped is None else skipped

    def consider(p: Path) -> None:
        why = _not_a_file(p)
        if why:
            bad.append((p, why))
        else:
            out.append(p)

    for raw in paths:
        p = Path(raw)
        if not os.path.lexists(p):
            raise InputError(
                f"{p}: no such file or directory. Check the path and run the command again."
            )
        if p.is_dir():

            def unreadable(e: OSError, top: Path = p) -> None:
                bad.append((Path(e.filename or top), f"directory not readable: {e.strerror}"))

            for root, dirs, files in os.walk(p, onerror=unreadable):
                dirs.sort()
                for d in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                    dirs.remove(d)
                    bad.append(
                        (
                            Path(root) / d,
                            "symbolic link to a directory: not followed (a link can loop)",
                        )
                    )
                for name in sorted(files):
                    if not name.startswith("."):
                        consider(Path(root) / name)
        else:
            consider(p)
    return [p.resolve() for p in out]


def _not_a_file(p: Path) -> str | None:
    """Why ``p`` cannot be read as a log file, or None when it is a regular file."""
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(p):
            return f"dangling symbolic link: {e.strerror}"
        return f"cannot read: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "socket"
            if stat.S_ISSOCK(st.st_mode)
            else "device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "special file"
        )
        return f"not a regular file: {kind}"
    if not os.access(p, os.R_OK):
        return "cannot read: permission denied"
    return None


def file_size(p: Path) -> int:
    """Size in bytes, 0 when the file vanished (progress totals only)."""
    try:
        return p.stat().st_size
    except OSError:
        return 0
