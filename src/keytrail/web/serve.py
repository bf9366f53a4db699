"""``keytrail serve``: the explorer in a browser, on 127.0.0.1 only, loading nothing remote.

textual-serve (aiohttp) starts one ``keytrail tui CASE`` subprocess per browser tab;
the case is opened read-only, so tabs never contend for DuckDB's write lock.
textual-serve has no authentication: :mod:`keytrail.web.guard` adds it (a token per run
traded for a cookie, ``Host`` and ``Origin`` checks, a cap on live sessions). The host is
fixed to ``127.0.0.1`` (reach it from elsewhere with an SSH tunnel:
``ssh -L 8566:127.0.0.1:8566 host``, then open the printed address).

textual-serve 1.1.3's page pulls the Roboto Mono font from fonts.googleapis.com. We
render our own copy of its template with that link replaced by an ``@font-face`` on
the font file textual-serve already ships in its static folder, refuse to start if
any remote URL is left in the template, and send a Content-Security-Policy that
only allows this origin, so the page cannot fetch anything from the network.
"""

from __future__ import annotations

import atexit
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from keytrail.errors import UsageError
from keytrail.safetext import shown

HOST = "127.0.0.1"
DEFAULT_PORT = 8566
DEFAULT_MAX_SESSIONS = 4
_FONT_LINK = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*/>", re.DOTALL)
_LOCAL_FONT = """<style>
      @font-face { font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); }
    </style>"""


def offline_template(source: str) -> str:
    """The textual-serve page with the remote font link replaced by the bundled font.

    Raises:
        UsageError: the template still references a remote URL (textual-serve changed).
    """
    page = _FONT_LINK.sub(_LOCAL_FONT, source)
    remote = re.findall(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//[^"']*""", page)
    if remote:
        raise UsageError(
            f"textual-serve's page loads remote resources ({remote}); refusing to serve"
        )
    return page


def csp(host: str) -> str:
    """Only this origin (``host`` is the checked ``Host``): scripts, styles (the page has inline ones),
    fonts, and the app websocket; no framing."""
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        f"font-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws://{host}; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def tui_command(case: Path) -> str:
    """The shell command textual-serve runs per tab (this Python, this keytrail)."""
    return shlex.join([sys.executable, "-m", "keytrail", "tui", str(case)])


def make_server(
    case: str | Path,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
) -> Any:
    """A textual-serve ``Server`` for ``case`` on 127.0.0.1:``port`` with the offline page and the guard.

    The server's ``guard`` attribute holds the :class:`~keytrail.web.guard.Guard` (its
    ``url()`` is the address to open).
    """
    import aiohttp_jinja2
    import textual_serve
    from aiohttp import web
    from textual_serve.server import Server

    from keytrail.web.guard import Guard, new_token, security_headers

    pkg = Path(textual_serve.__file__).parent
    templates = Path(tempfile.mkdtemp(prefix="keytrail-serve-"))
    atexit.register(shutil.rmtree, templates, True)
    source = (pkg / "templates" / "app_index.html").read_text(encoding="utf-8")
    (templates / "app_index.html").write_text(offline_template(source), encoding="utf-8")
    guard = the_guard = Guard(port, token or new_token(), max_sessions)
    headers = security_headers(lambda request: csp(guard.host(request) or f"{HOST}:{port}"))

    class GuardedServer(Server):
        #: The checks in front of every request; ``guard.url()`` is the address to open.
        guard: Guard = the_guard

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.extend(
                [headers, guard.middleware]
            )  # headers outermost: refusals get them too
            return app

        async def on_startup(self, app: web.Application) -> None:
            """Quiet: :func:`serve` prints the one line that matters (the address with the token)."""

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            """textual-serve's page, with its URLs on the host the browser used (the cookie is per host)."""
            host = guard.host(request) or f"{HOST}:{port}"
            raw = request.query.get("fontsize", "16")
            font_size = min(64, max(6, int(raw))) if raw.isdigit() else 16
            return {
                "font_size": font_size,
                "app_websocket_url": f"ws://{host}/ws",
                "config": {"static": {"url": f"http://{host}/static/"}},
                "application": {"name": self.title},
            }

    return GuardedServer(
        tui_command(Path(case).resolve()),
        host=HOST,
        port=port,
        title=f"keytrail {Path(case).name}",
        statics_path=pkg / "static",
        templates_path=templates,
    )


def serve(
    case: str | Path, port: int = DEFAULT_PORT, max_sessions: int = DEFAULT_MAX_SESSIONS
) -> int:
    """Serve until Ctrl+C; print the address to open (with this run's token) on stderr."""
    server = make_server(case, port, max_sessions=max_sessions)
    print(
        f"keytrail: serving {shown(str(case))} on 127.0.0.1:{port} (loopback only, at most {max_sessions} "
        f"explorer session(s); Ctrl+C stops). Open:\n  {server.guard.url()}",
        file=sys.stderr,
        flush=True,
    )
    server.serve()
    return 0
