"""The installed command in a real terminal: ``keytrail tui CASE`` under tmux, navigate, quit with 0."""

from __future__ import annotations

import os
import re
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
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


def _wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    pane = ""
    while time.monotonic() < deadline:
        pane = _pane(session)
        if text in pane:
            return pane
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear; screen was:\n{pane}")


def _start_tui(case: Path, cols: int, rows: int, rc_file: Path | None = None) -> str:
    """``keytrail tui CASE`` in a new detached tmux session of ``cols`` x ``rows``; its name.

    With ``rc_file`` the shell writes the command's exit code there when it ends."""
    session = f"kt-{uuid.uuid4().hex[:8]}"
    # a tmux server keeps the environment it started with: pass ours (PYTHONPATH=src) explicitly
    env = [f"{k}={os.environ[k]}" for k in ("HOME", "PATH") if k in os.environ]
    if os.environ.get("PYTHONPATH"):
        paths = os.environ["PYTHONPATH"].split(os.pathsep)
        env.append("PYTHONPATH=" + os.pathsep.join(os.path.abspath(p) for p in paths))
    cmd = shlex.join(
        ["env", *env, "TERM=xterm-256color", sys.executable, "-m", "keytrail", "tui", str(case)]
    )
    if rc_file is not None:
        cmd += f"; echo $? > {shlex.quote(str(rc_file))}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows)]
        + ["-c", os.getcwd(), cmd],
        check=True,
    )
    return session


def test_tui_in_tmux_opens_navigates_and_quits(small_case: Path, tmp_path: Path) -> None:
    rc_file = tmp_path / "rc"
    session = _start_tui(small_case, 120, 40, rc_file)
    try:
        pane = _wait_for(session, "top credentials by blast radius")
        pane = _wait_for(session, "2,507 events")  # the status line, under the overview
        assert "Overview" in pane
        subprocess.run(["tmux", "send-keys", "-t", session, "t"], check=True)
        _wait_for(session, "events 1–200 of 2,507")
        pane = _wait_for(session, "sts:AssumeRole")  # the rows paint a frame after the status
        assert "sts:AssumeRole" in pane and "s3:[bold red]Boom[/]" in pane  # hostile text literal
        subprocess.run(["tmux", "send-keys", "-t", session, "]"], check=True)
        _wait_for(session, "events 201–400 of 2,507")
        # Escape is "Back/Cancel": while the page's follow-up work (counts, attribution) still runs it
        # cancels that first (a loaded machine gets there), and the next Escape goes back
        deadline = time.monotonic() + 30
        while (
            "top credentials by blast radius" not in _pane(session) and time.monotonic() < deadline
        ):
            subprocess.run(["tmux", "send-keys", "-t", session, "Escape"], check=True)
            time.sleep(1.0)
        _wait_for(session, "top credentials by blast radius")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 20
        while not rc_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rc_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)


def test_tui_at_80x24_shows_the_list_the_id_and_the_score(small_case: Path, tmp_path: Path) -> None:
    """The smallest usual terminal: the overview's top credentials, the list's id and score, the tabs."""
    session = _start_tui(small_case, 80, 24)
    try:
        pane = _wait_for(session, "top credentials by blast radius")
        assert "findings per level" in pane  # the answer is above the fold
        subprocess.run(["tmux", "send-keys", "-t", session, "c"], check=True)
        _wait_for(session, "credentials  ·  Enter opens")
        pane = _wait_for(session, "aws-access-key")  # the table paints a frame after the status
        assert re.search(r"credential\s+score\s+kind", pane), (
            pane
        )  # the id and the score come first
        assert "hmac:abc" in pane and "AKIA1" in pane
        # Keys are sent as a person types them: Textual moves the focus after the keys already
        # queued, so "/AKIA1" sent at once can reach the list, not the filter (a CI run opened
        # the first row instead of AKIA1's). Each step waits for the screen to show it was taken.
        subprocess.run(["tmux", "send-keys", "-t", session, "/"], check=True)
        time.sleep(1.0)
        subprocess.run(["tmux", "send-keys", "-t", session, "AKIA1"], check=True)
        _wait_for(session, "1 of 3 credentials")  # the filter has applied
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)  # to the list
        time.sleep(1.0)
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)  # opens it
        pane = _wait_for(session, "1 Blast radius")
        assert "Credential — AKIA1" in pane, pane
        pane = _wait_for(
            session, "▸ score"
        )  # the header is folded to one line at 24 rows (h unfolds it)
        assert max(len(line.rstrip()) for line in pane.splitlines()) <= 80
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
