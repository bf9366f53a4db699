"""The installed command in a real terminal: ``keytrail tui CASE`` under tmux, navigate, quit with 0."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False).stdout


def _wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    pane = ""
    while time.monotonic() < deadline:
        pane = _pane(session)
        if text in pane:
            return pane
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear; screen was:\n{pane}")


def test_tui_in_tmux_opens_navigates_and_quits(small_case: Path, tmp_path: Path) -> None:
    session = f"kt-{uuid.uuid4().hex[:8]}"
    rc_file = tmp_path / "rc"
    # a tmux server keeps the environment it started with: pass ours (PYTHONPATH=src) explicitly
    env = [f"{k}={os.environ[k]}" for k in ("HOME", "PATH") if k in os.environ]
    if os.environ.get("PYTHONPATH"):
        env.append("PYTHONPATH=" + os.pathsep.join(os.path.abspath(p) for p in
                                                   os.environ["PYTHONPATH"].split(os.pathsep)))
    cmd = shlex.join(["env", *env, "TERM=xterm-256color", sys.executable, "-m", "keytrail", "tui",
                      str(small_case)])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", "-c", os.getcwd(),
                    f"{cmd}; echo $? > {shlex.quote(str(rc_file))}"], check=True)
    try:
        pane = _wait_for(session, "rejected records")
        assert "Overview" in pane and "2,507" in pane
        subprocess.run(["tmux", "send-keys", "-t", session, "t"], check=True)
        pane = _wait_for(session, "events 1–200 of 2,507")
        assert "sts:AssumeRole" in pane and "s3:[bold red]Boom[/]" in pane  # hostile text literal
        subprocess.run(["tmux", "send-keys", "-t", session, "]"], check=True)
        _wait_for(session, "events 201–400 of 2,507")
        # Escape is "Back/Cancel": while the page's follow-up work (counts, attribution) still runs it
        # cancels that first (a loaded machine gets there), and the next Escape goes back
        deadline = time.monotonic() + 30
        while "rejected records" not in _pane(session) and time.monotonic() < deadline:
            subprocess.run(["tmux", "send-keys", "-t", session, "Escape"], check=True)
            time.sleep(1.0)
        _wait_for(session, "rejected records")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 20
        while not rc_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rc_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
