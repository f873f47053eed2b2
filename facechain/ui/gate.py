"""The token check in front of the web UI, for browsers that cannot send a bearer header.

The service's request guard lets the UI's prefix through (the ``delegated`` hook) and this gate does
the same job for it: with a token set, a request needs ``Authorization: Bearer <token>``, or the
``facechain_ui`` cookie (an HMAC of the token, so the browser never stores the token itself). ``/ui/?token=...`` (what ``facechain ui`` opens) sets the
cookie and redirects to the same page without the token in its address; without a credential a
page request gets a small login form. The cookie is HttpOnly, SameSite=Strict and scoped to the UI's
path. Body sizes are limited by the service's own guard class (the upload limit for every UI route:
Gradio sends files to its own upload route).
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from ..service.security import RequestGuard, bearer_token, send_error, token_matches

COOKIE = "facechain_ui"
LOGIN = "login"

_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>facechain</title>
<style>body{{font-family:sans-serif;max-width:420px;margin:10vh auto}}input{{width:100%;padding:8px;margin:8px 0}}
.e{{color:#b00020}}</style></head><body><h2>facechain</h2><p>This server needs its access token
(<code>facechain serve --token</code> or <code>$FACECHAIN_API_TOKEN</code>).</p>{error}
<form method="post" action="{action}"><input type="password" name="token" placeholder="token" autofocus>
<input type="submit" value="Open the UI"></form></body></html>"""


class UIGate:
    """ASGI middleware: requests under ``prefix`` pass the token check and the body limit; others pass by."""

    def __init__(self, app: Callable, *, prefix: str, token: str | None, max_body: int):
        self.app, self.prefix, self.token = app, prefix.rstrip("/"), token
        self.limited = RequestGuard(app, token=None, max_upload_body=max_body, max_json_body=max_body)
        self.cookie_value = hmac.new(token.encode(), b"facechain-ui", hashlib.sha256).hexdigest() if token else ""

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        if not self.token or token_matches(bearer_token(scope), self.token) or \
                token_matches(_cookie(scope, COOKIE), self.cookie_value):
            await self.limited(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if path == f"{self.prefix}/{LOGIN}" and scope.get("method") == "POST":
            body = await _read_form(receive)
            if token_matches(body.get("token"), self.token):
                await _redirect(send, f"{self.prefix}/", self._cookie_header())
            else:
                await _html(send, 401, self._login("wrong token"))
            return
        if "token" in query:
            if token_matches(query["token"], self.token):
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                await _redirect(send, path + (f"?{rest}" if rest else ""), self._cookie_header())
            else:
                await _html(send, 401, self._login("wrong token"))
            return
        if scope.get("method") == "GET" and b"text/html" in _header(scope, b"accept"):
            await _html(send, 401, self._login(""))
            return
        await send_error(send, 401, "missing or invalid token: open the UI with ?token=<token> or log in",
                         [(b"www-authenticate", b"Bearer")])

    def _cookie_header(self) -> tuple[bytes, bytes]:
        value = f"{COOKIE}={self.cookie_value}; Path={self.prefix}; HttpOnly; SameSite=Strict"
        return b"set-cookie", value.encode("latin-1")

    def _login(self, error: str) -> str:
        return _LOGIN_PAGE.format(error=f'<p class="e">{escape(error)}</p>' if error else "",
                                  action=f"{self.prefix}/{LOGIN}")


def _header(scope: dict[str, Any], name: bytes) -> bytes:
    return b",".join(v for k, v in scope.get("headers", []) if k == name)


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    for part in _header(scope, b"cookie").decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _read_form(receive: Callable, limit: int = 4096) -> dict[str, str]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit or not message.get("more_body"):
            break
    return dict(parse_qsl(body[:limit].decode("utf-8", "replace")))


async def _redirect(send: Callable, location: str, *headers: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"), *headers]})
    await send({"type": "http.response.body", "body": b""})


async def _html(send: Callable, status: int, page: str) -> None:
    body = page.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
