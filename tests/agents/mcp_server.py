"""An MCP server (the ``mcp`` SDK's MCPServer, stdio) whose one tool reads a secret from OpenBao.

Run as a subprocess by the MCP scenario: ``python -m tests.agents.mcp_server``. It takes the server
address and its own AppRole credentials from the environment (``BAO_ADDR``, ``MCP_ROLE_ID``,
``MCP_SECRET_ID``), logs in once and reads ``secret/data/<path>`` for each ``read_secret`` call,
as an MCP server holding its own Vault identity does.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("vault-tools")
_token: list[str] = []


def _call(
    method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{os.environ['BAO_ADDR']}/v1/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
    )
    if token:
        request.add_header("X-Vault-Token", token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read() or b"{}"))


@server.tool()
def read_secret(path: str) -> str:
    """Read a KV v2 secret under secret/ and say which keys it holds (never the values)."""
    if not _token:
        got = _call(
            "POST",
            f"auth/{os.environ.get('MCP_MOUNT', 'agents-approle')}/login",
            {"role_id": os.environ["MCP_ROLE_ID"], "secret_id": os.environ["MCP_SECRET_ID"]},
        )
        _token.append(got["auth"]["client_token"])
    try:
        data = _call("GET", f"secret/data/{path.strip('/')}", token=_token[0])
    except urllib.error.HTTPError as e:
        return f"error {e.code}"
    return "keys: " + ", ".join(sorted(data["data"]["data"]))


if __name__ == "__main__":
    server.run("stdio")
