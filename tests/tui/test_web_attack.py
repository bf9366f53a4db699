"""Another page in the responder's Chromium cannot drive ``keytrail serve`` (real browser, real server).

The responder has opened the tokened address (the browser holds the cookie). Then, in the
same browser:

- a page from another origin on the same host (``127.0.0.1:OTHER``: same *site*, so the
  ``SameSite`` cookie is sent) opens the explorer's WebSocket and fetches the page: the
  ``Origin`` check refuses the socket, CORS keeps the page unreadable;
- a DNS-rebinding page (``http://rebind.test:PORT``, resolved to 127.0.0.1 by Chromium's
  ``--host-resolver-rules``) is same-origin with itself but sends ``Host: rebind.test:PORT``:
  it gets the refusal, not the explorer.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.tui.test_web import CHROMIUM, FLAGS, Cdp, _free_port, _until, start_serve

pytestmark = [
    pytest.mark.web,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

EVIL = """<!doctype html><title>evil</title><script>
const target = "127.0.0.1:%(port)d";
window.result = {ws: "pending", fetch: "pending"};
const ws = new WebSocket("ws://" + target + "/ws?width=80&height=24");
ws.onopen = () => { window.result.ws = "OPEN"; };
ws.onclose = () => { if (window.result.ws !== "OPEN") window.result.ws = "refused"; };
fetch("http://" + target + "/", {credentials: "include"})
  .then(r => r.text()).then(t => { window.result.fetch = "READ " + t.length; })
  .catch(() => { window.result.fetch = "blocked"; });
</script>"""


def _evil_server(port: int, html: str) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def _attack(
    cdp_port: int, port: int, token: str, evil_port: int
) -> tuple[dict[str, str], str]:
    import aiohttp

    async with aiohttp.ClientSession() as http_client:
        async with http_client.get(f"http://127.0.0.1:{cdp_port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http_client.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = Cdp(ws)
            await cdp.send("Page.enable")

            async def value(expr: str) -> Any:
                r = await cdp.send("Runtime.evaluate", expression=expr, returnByValue=True)
                return r.get("result", {}).get("value")

            # the responder opens the printed address: the browser now holds the cookie
            await cdp.send("Page.navigate", url=f"http://127.0.0.1:{port}/?token={token}")

            async def explorer_page() -> bool:
                return bool(await value("!!document.querySelector('[data-session-websocket-url]')"))

            await _until(explorer_page)
            # the cookie really is there (HttpOnly: the page's own script cannot see it)
            cookies = await cdp.send("Network.getAllCookies")
            assert any(
                c["name"] == f"keytrail_serve_{port}"
                and c["httpOnly"]
                and c["sameSite"] == "Strict"
                for c in cookies["cookies"]
            )
            assert await value("document.cookie") == ""

            await cdp.send("Page.navigate", url=f"http://127.0.0.1:{evil_port}/")

            async def settled() -> bool:
                res = await value("JSON.stringify(window.result || {})")
                return bool(res) and "pending" not in res and res != "{}"

            await _until(settled)
            result = json.loads(await value("JSON.stringify(window.result)"))

            await cdp.send("Page.navigate", url=f"http://rebind.test:{port}/")

            async def loaded() -> bool:
                return await value("document.readyState") == "complete" and bool(
                    await value("document.body && document.body.innerText")
                )

            await _until(loaded)
            rebound = str(await value("document.body.innerText"))
            cdp.reader.cancel()
            return result, rebound


def test_other_pages_cannot_drive_serve(small_case: Path, tmp_path: Path) -> None:
    port, evil_port = _free_port(), _free_port()
    server, token = start_serve(small_case, port, tmp_path / "serve.log")
    evil = _evil_server(evil_port, EVIL % {"port": port})
    browser = None
    try:
        profile = tmp_path / "chromium"
        browser = subprocess.Popen(
            [
                str(CHROMIUM),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP rebind.test 127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.2)
        result, rebound = asyncio.run(
            _attack(int(port_file.read_text().split()[0]), port, token, evil_port)
        )
        assert result == {"ws": "refused", "fetch": "blocked"}, result
        assert "refused" in rebound and "Host" in rebound and "data-session" not in rebound
        log = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in log
    finally:
        evil.shutdown()
        for proc in (browser, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)
