"""``keytrail serve``: the explorer in a browser, on 127.0.0.1 only, loading nothing remote.

textual-serve (aiohttp) starts one ``keytrail tui CASE`` subprocess per browser tab;
the case is opened read-only, so tabs never contend for DuckDB's write lock. There is
no authentication in textual-serve, so the host is fixed to ``127.0.0.1`` (reach it
from elsewhere with an SSH tunnel: ``ssh -L 8566:127.0.0.1:8566 host``).

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

HOST = "127.0.0.1"
DEFAULT_PORT = 8566
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
        raise UsageError(f"textual-serve's page loads remote resources ({remote}); refusing to serve")
    return page


def csp(port: int) -> str:
    """Only this origin: scripts, styles (the page has inline ones), fonts, and the app websocket."""
    return ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            f"font-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws://{HOST}:{port}; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'")


def tui_command(case: Path) -> str:
    """The shell command textual-serve runs per tab (this Python, this keytrail)."""
    return shlex.join([sys.executable, "-m", "keytrail", "tui", str(case)])


def make_server(case: str | Path, port: int = DEFAULT_PORT) -> Any:
    """A textual-serve ``Server`` for ``case`` on 127.0.0.1:``port`` with the offline page."""
    import textual_serve
    from aiohttp import web
    from textual_serve.server import Server

    pkg = Path(textual_serve.__file__).parent
    templates = Path(tempfile.mkdtemp(prefix="keytrail-serve-"))
    atexit.register(shutil.rmtree, templates, True)
    source = (pkg / "templates" / "app_index.html").read_text(encoding="utf-8")
    (templates / "app_index.html").write_text(offline_template(source), encoding="utf-8")
    policy = csp(port)

    @web.middleware
    async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    class LoopbackServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(headers)
            return app

    return LoopbackServer(tui_command(Path(case).resolve()), host=HOST, port=port,
                          title=f"keytrail {Path(case).name}", statics_path=pkg / "static",
                          templates_path=templates)


def serve(case: str | Path, port: int = DEFAULT_PORT) -> int:
    """Serve until Ctrl+C."""
    server = make_server(case, port)
    print(f"keytrail: serving {case} on http://{HOST}:{port}/ (loopback only; Ctrl+C stops)", file=sys.stderr)
    server.serve()
    return 0
