"""A logging stdio proxy between an MCP client and server, as MCP gateways log traffic.

``python -m tests.agents.mcp_proxy LOG USER SERVER -- COMMAND...`` starts COMMAND (the server),
relays newline-delimited JSON-RPC both ways unchanged, and appends each message to LOG in the
wrapped envelope keytrail reads (``docs/formats/mcp.md``): time, direction, session, server,
client (the ``clientInfo.name`` of the ``initialize`` request, as a gateway records it) and user
(the person the gateway authenticated: here given on the command line).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from typing import IO


def main(argv: list[str]) -> int:
    log_path, user, server_name = argv[:3]
    command = argv[argv.index("--") + 1 :]
    session = str(uuid.uuid4())
    client: list[str] = []
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def record(direction: str, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if direction == "client_to_server":
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            info = params.get("clientInfo") or meta.get("io.modelcontextprotocol/clientInfo") or {}
            if isinstance(info, dict) and info.get("name"):
                client[:] = [str(info["name"])]
        envelope = {
            "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "direction": direction,
            "session": session,
            "server": server_name,
            "client": client[0] if client else None,
            "user": user,
            "message": message,
        }
        with lock:
            log.write(json.dumps(envelope, separators=(",", ":")) + "\n")
            log.flush()

    def pump(src: IO[bytes], dst: IO[bytes], direction: str) -> None:
        for line in iter(src.readline, b""):
            record(direction, line)
            dst.write(line)
            dst.flush()
        if direction == "client_to_server":
            dst.close()

    up = threading.Thread(
        target=pump, args=(sys.stdin.buffer, child.stdin, "client_to_server"), daemon=True
    )
    up.start()
    pump(child.stdout, sys.stdout.buffer, "server_to_client")
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
