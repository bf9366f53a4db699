"""Who may talk to ``keytrail serve``: the browser the responder opened it in, and nothing else.

The threat is any web page open in the responder's browser while serve runs (it can make
the browser send requests to ``127.0.0.1``) and DNS rebinding (a page whose host name
later resolves to ``127.0.0.1`` is same-origin with the server). The explorer behind the
socket shows case data and has a SQL console, so every request passes this middleware:

- ``Host`` must be ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT`` (DNS rebinding
  sends the attacker's host name);
- a random token per run, printed as the address to open (``/?token=...``, as Jupyter
  does), is traded for an ``HttpOnly``, ``SameSite=Strict`` cookie; no page, static file,
  download or socket without one of them (another site cannot read the token nor make the
  browser send the cookie);
- the WebSocket upgrade also needs ``Origin`` to be this server's own origin (browsers set
  it and pages cannot forge it);
- at most ``max_sessions`` explorers run at once (each is a process); when full, the page
  and the socket are refused with a plain page that says why.

Refusals are ``text/plain`` and never echo what the request sent.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths that start an explorer process (counted against the cap).
SOCKET_PATH = "/ws"
#: How long a page or socket request at the cap waits for a session to end before it is refused.
#: A closed tab's explorer stops in ~0.1 s on an idle machine but took over 2 s at load 16 on
#: two cores; a reload must not be refused for that, and a refusal may well take a few seconds.
SLOT_WAIT = 5.0


def new_token() -> str:
    """A fresh secret for one run of serve (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _refuse(status: int, why: str) -> web.Response:
    return web.Response(
        status=status,
        text=f"keytrail serve: {why}\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _enter_page() -> web.Response:
    """The answer to the tokened address: set the cookie, then go to ``/`` (the token leaves the URL).

    A same-site ``meta refresh`` rather than a redirect: a ``SameSite=Strict`` cookie is not
    sent on a redirect chain that a link on another site started.
    """
    html = (
        '<!doctype html><meta charset=utf-8><meta http-equiv=refresh content="0;url=/">'
        '<title>keytrail</title><p><a href="/">Open the explorer</a></p>\n'
    )
    return web.Response(
        text=html, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


class Guard:
    """The checks above, as an aiohttp middleware (:meth:`middleware`), for one port and token."""

    def __init__(self, port: int, token: str, max_sessions: int) -> None:
        self.port = port
        self.token = token
        self.max_sessions = max_sessions
        self.hosts = frozenset(f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]"))
        #: Cookies are shared by every port of a host: the port in the name keeps two serves apart.
        self.cookie = f"keytrail_serve_{port}"
        self.live = 0

    def url(self) -> str:
        """The address to open (it carries the token)."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def _valid(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def host(self, request: web.Request) -> str | None:
        """The request's ``Host`` when it is one of ours (lower-cased), else ``None``."""
        host = request.headers.get("Host", "").strip().lower()
        return host if host in self.hosts else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = self.host(request)
        if host is None:
            return _refuse(
                421,
                "refused: the Host header is not this server's address "
                f"(use http://127.0.0.1:{self.port}/)",
            )
        query_token = request.query.get("token")
        if query_token is not None and not self._valid(query_token):
            return _refuse(403, "refused: wrong token (open the address keytrail serve printed)")
        if query_token is None and not self._valid(request.cookies.get(self.cookie)):
            return _refuse(
                403,
                "refused: no token (open the address keytrail serve printed: "
                "http://127.0.0.1:PORT/?token=...)",
            )
        if request.path == SOCKET_PATH:
            return await self._socket(request, handler, host)
        if query_token is not None and request.path == "/":
            response = _enter_page()
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            return response
        if request.path == "/" and not await self._slot_free():
            return self._full()
        return await handler(request)

    async def _slot_free(self) -> bool:
        """Whether a session may start, waiting up to :data:`SLOT_WAIT` seconds for one to end.

        A reload closes the tab's socket and asks for the page at once; the old explorer
        takes a moment (~0.1 s) to stop, and a reload at the cap must not be refused for it.
        """
        deadline = time.monotonic() + SLOT_WAIT
        while self.live >= self.max_sessions:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _full(self) -> web.Response:
        return _refuse(
            503,
            f"all {self.max_sessions} explorer sessions are in use (--max-sessions). "
            "Close another keytrail tab, then reload this page.",
        )

    async def _socket(
        self, request: web.Request, handler: Handler, host: str
    ) -> web.StreamResponse:
        if request.headers.get("Origin") != f"http://{host}":
            return _refuse(403, "refused: the WebSocket Origin is not this server")
        if not await self._slot_free():
            return self._full()
        self.live += 1  # no await between the check and the count: one event loop, no race
        try:
            return await handler(request)
        finally:
            self.live -= 1


def security_headers(policy: Callable[[web.Request], str]) -> Any:
    """A middleware adding the request's CSP (``policy(request)``) and the usual hardening headers."""

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Content-Security-Policy"] = policy(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    return headers
