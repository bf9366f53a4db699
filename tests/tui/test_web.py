"""``keytrail serve`` in headless Chromium: loopback only, nothing fetched from the network, the app renders.

Driven over the DevTools protocol with aiohttp's websocket client (already a
textual-serve dependency), so no extra test package is needed. The screen is an
xterm.js canvas: we assert on the page's body classes (``-first-byte`` once the app
wrote to the terminal), on the app's output in the websocket frames, on every URL
the page requested, and we save a screenshot (``KEYTRAIL_WEB_SCREENSHOT=path``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.web,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0, cookie: str = "") -> tuple[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                return r.read().decode(), dict(r.headers)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_serve(
    case: Path, port: int, log: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``keytrail serve`` and the token from the address it printed (waits until it answers)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keytrail", "serve", str(case), "--port", str(port), *extra],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while "?token=" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    token = log.read_text().split("?token=", 1)[1].split()[0]
    _wait_http(f"http://127.0.0.1:{port}/?token={token}")
    return proc, token


def _listen_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on ``port`` (from /proc/net/tcp{,6})."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        for line in Path(name).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            addr, _, hexport = local.rpartition(":")
            if state == "0A" and int(hexport, 16) == port:
                out.add(addr)
    return out


class Cdp:
    """A minimal DevTools protocol client: commands by id, events collected."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, 20)
        assert "error" not in reply, reply
        return dict(reply.get("result", {}))

    def frames(self) -> bytes:
        out = b""
        for e in self.events:
            if e.get("method") == "Network.webSocketFrameReceived":
                r = e["params"]["response"]
                out += (
                    base64.b64decode(r["payloadData"])
                    if r.get("opcode") == 2
                    else r["payloadData"].encode()
                )
        return out


async def _until(pred: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.25)


async def _drive(cdp_port: int, url: str, shot: Path) -> tuple[list[str], bytes, bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{cdp_port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = Cdp(ws)
            await cdp.send("Network.enable")
            await cdp.send("Page.enable")
            await cdp.send("Page.navigate", url=url)

            async def first_byte() -> bool:
                r = await cdp.send(
                    "Runtime.evaluate", expression="document.body && document.body.className"
                )
                return "-first-byte" in str(r.get("result", {}).get("value"))

            await _until(first_byte)

            async def overview_drawn() -> bool:
                return b"rejected records" in cdp.frames()

            await _until(overview_drawn)
            before = cdp.frames()
            await cdp.send(
                "Input.dispatchMouseEvent",
                type="mousePressed",
                x=400,
                y=300,
                button="left",
                clickCount=1,
            )
            await cdp.send(
                "Input.dispatchMouseEvent",
                type="mouseReleased",
                x=400,
                y=300,
                button="left",
                clickCount=1,
            )
            await cdp.send("Input.dispatchKeyEvent", type="keyDown", key="t", text="t")
            await cdp.send("Input.dispatchKeyEvent", type="keyUp", key="t")

            async def timeline_drawn() -> bool:
                return b"sts:AssumeRole" in cdp.frames()[len(before) :]

            await _until(timeline_drawn)
            await asyncio.sleep(0.5)
            png = await cdp.send("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            urls = [
                e["params"]["request"]["url"]
                for e in cdp.events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            urls += [
                e["params"]["url"]
                for e in cdp.events
                if e.get("method") == "Network.webSocketCreated"
            ]
            cdp.reader.cancel()
            return urls, before, cdp.frames()


def test_serve_in_headless_chromium(small_case: Path, tmp_path: Path) -> None:
    port = _free_port()
    server, token = start_serve(small_case, port, tmp_path / "serve.log")
    browser = None
    try:
        html, headers = _wait_http(
            f"http://127.0.0.1:{port}/", cookie=f"keytrail_serve_{port}={token}"
        )
        assert "googleapis" not in html and "fonts/RobotoMono-VariableFont_wght.ttf" in html
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert _listen_addresses(port) <= {"0100007F"}, "serve must listen on 127.0.0.1 only"
        profile = tmp_path / "chromium"
        browser = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.2)
        cdp_port = int(port_file.read_text().split()[0])
        shot = Path(os.environ.get("KEYTRAIL_WEB_SCREENSHOT") or tmp_path / "served.png")
        urls, first, frames = asyncio.run(
            _drive(cdp_port, f"http://127.0.0.1:{port}/?token={token}", shot)
        )
        remote = [
            u
            for u in urls
            if not u.startswith(
                (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/", "data:", "blob:")
            )
        ]
        assert remote == [], f"the page fetched from the network: {remote}"
        assert any(u.startswith(f"ws://127.0.0.1:{port}/ws") for u in urls)
        # the tokened address sets the cookie and moves on to "/" (the token leaves the address bar)
        assert f"http://127.0.0.1:{port}/" in urls
        assert b"Overview" in first and b"Timeline" in frames
        assert shot.stat().st_size > 10_000  # a rendered canvas, not a blank page
    finally:
        for proc in (browser, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)
