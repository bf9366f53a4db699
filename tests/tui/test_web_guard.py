"""``keytrail serve`` refuses what another web page or DNS rebinding would send (real server, real client).

One real ``keytrail serve --max-sessions 1`` runs for the module; aiohttp's HTTP and
WebSocket client (a textual-serve dependency) plays the attacker's browser: wrong
``Host``, wrong ``Origin``, no or wrong token, one session too many. The cookie is sent
as a header (aiohttp's cookie jar ignores cookies of IP hosts).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.tui.test_web import _free_port, start_serve


@pytest.fixture(scope="module")
def served(small_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    port = _free_port()
    proc, token = start_serve(
        small_case, port, tmp_path_factory.mktemp("serve") / "serve.log", "--max-sessions", "1"
    )
    try:
        yield port, token
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _get(port: int, path: str, **headers: str) -> tuple[int, str, Any]:
    async def go() -> tuple[int, str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}{path}", headers=headers, allow_redirects=False) as r,
        ):
            return r.status, await r.text(), r.headers

    return asyncio.run(go())


def _cookie(port: int, token: str) -> str:
    return f"keytrail_serve_{port}={token}"


def test_no_page_without_the_token(served: tuple[int, str]) -> None:
    port, token = served
    for path in ("/", "/static/js/textual.js", "/download/x", "/?token=", f"/?token={token[:-1]}x"):
        status, body, _ = _get(port, path)
        assert status == 403 and "refused" in body and token not in body, path
    status, body, _ = _get(port, "/", Cookie=_cookie(port, "not-the-token"))
    assert status == 403
    status, body, _ = _get(
        port, "/", Cookie=f"keytrail_serve_{port + 1}={token}"
    )  # another serve's cookie
    assert status == 403


def test_token_becomes_an_httponly_strict_cookie(served: tuple[int, str]) -> None:
    port, token = served
    status, body, headers = _get(port, f"/?token={token}")
    assert status == 200 and 'url=/"' in body and token not in body
    cookie = headers["Set-Cookie"]
    assert (
        cookie.startswith(_cookie(port, token))
        and "HttpOnly" in cookie
        and "SameSite=Strict" in cookie
    )
    status, body, headers = _get(port, "/", Cookie=_cookie(port, token))
    assert status == 200 and f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    status, body, _ = _get(port, "/static/js/textual.js", Cookie=_cookie(port, token))
    assert status == 200 and body


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "127.0.0.1:{other}",
        "localhost",
        "127.0.0.1",
        "",
    ],
)
def test_wrong_host_is_refused(served: tuple[int, str], host: str) -> None:
    """DNS rebinding: the browser sends the attacker's host name, with the right cookie even."""
    port, token = served
    h = host.format(port=port, other=port + 1)
    for path in ("/", f"/?token={token}", "/static/js/textual.js", "/ws"):
        status, body, _ = _get(port, path, Host=h, Cookie=_cookie(port, token))
        assert status == 421 and "Host" in body and token not in body, (h, path)


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_the_loopback_names_are_served(served: tuple[int, str], host: str) -> None:
    port, token = served
    h = host.format(port=port)
    status, body, _ = _get(port, "/", Host=h, Cookie=_cookie(port, token))
    assert status == 200 and f"ws://{h.lower()}/ws" in body


async def _ws(port: int, token: str | None, origin: str | None, host: str | None = None) -> Any:
    headers = {}
    if token is not None:
        headers["Cookie"] = _cookie(port, token)
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    http = aiohttp.ClientSession()
    try:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=100&height=30", headers=headers)
    except aiohttp.WSServerHandshakeError as e:
        await http.close()
        return e.status
    return http, ws


def test_websocket_needs_cookie_origin_and_a_free_session(served: tuple[int, str]) -> None:
    port, token = served
    me = f"http://127.0.0.1:{port}"

    async def go() -> None:
        assert await _ws(port, None, me) == 403  # no token
        assert await _ws(port, "wrong", me) == 403
        for origin in (
            "http://evil.example",
            f"http://localhost:{port}",
            f"http://127.0.0.1:{port + 1}",
            f"https://127.0.0.1:{port}",
            "null",
            None,
        ):
            assert await _ws(port, token, origin) == 403, origin
        assert await _ws(port, token, "http://evil.example", host="evil.example") == 421
        http, ws = await _ws(
            port, token, me
        )  # the one allowed session: the explorer starts and draws
        try:
            got = b""
            deadline = time.monotonic() + 60
            while b"Overview" not in got and time.monotonic() < deadline:
                msg = await ws.receive(timeout=60)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got += msg.data
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    got += msg.data.encode()
                else:
                    break
            assert b"Overview" in got
            assert await _ws(port, token, me) == 503  # --max-sessions 1: a second one is refused
            async with (
                aiohttp.ClientSession() as h2,
                h2.get(f"{me}/", headers={"Cookie": _cookie(port, token)}) as r,
            ):
                assert r.status == 503
                assert "sessions are in use" in await r.text()
        finally:
            await ws.close()
            await http.close()
        # a reload at the cap: the page asked for right after the socket closed is served (the guard
        # waits the moment the old explorer takes to stop), and so is the new socket
        async with (
            aiohttp.ClientSession() as h3,
            h3.get(f"{me}/", headers={"Cookie": _cookie(port, token)}) as r,
        ):
            assert r.status == 200
        http, ws = await _ws(port, token, me)
        await ws.close()
        await http.close()

    asyncio.run(go())


def test_max_sessions_default_is_4() -> None:
    from keytrail.cli.main import build_parser

    assert build_parser().parse_args(["serve", "case.duckdb"]).max_sessions == 4
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "case.duckdb", "--max-sessions", "0"])
