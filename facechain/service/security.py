"""The request guard in front of every route: bearer token and body-size limits.

A pure ASGI middleware, so it also covers ``/docs``, the OpenAPI document, streams and anything
mounted later (the web UI). The token is compared with :func:`hmac.compare_digest` (constant
time). A body larger than allowed is refused from its ``Content-Length`` or, when streamed, as
soon as it grows past the limit: nothing that large is ever read into memory or onto disk.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

UPLOAD_PATH = "/v1/uploads"
TOO_LARGE_KEY = "facechain.body_too_large"


class _TooLarge(Exception):
    pass


def bearer_token(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


async def send_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def is_under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class RequestGuard:
    def __init__(self, app: Callable, *, token: str | None, max_upload_body: int, max_json_body: int,
                 delegated: tuple[str, ...] = ()):
        self.app, self.token = app, token
        self.max_upload_body, self.max_json_body = max_upload_body, max_json_body
        # hook (web UI, facechain.ui): path prefixes whose mounted app checks the token and body sizes itself
        self.delegated = tuple(p.rstrip("/") for p in delegated)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_under(scope.get("path", ""), self.delegated):
            await self.app(scope, receive, send)
            return
        if self.token and not token_matches(bearer_token(scope), self.token):
            missing = bearer_token(scope) is None
            await send_error(send, 401, "missing bearer token: send 'Authorization: Bearer <token>'" if missing
                             else "invalid token", [(b"www-authenticate", b"Bearer")])
            return
        limit = self.max_upload_body if scope.get("path") == UPLOAD_PATH else self.max_json_body
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, f"request body too large ({int(declared):,} bytes, limit {limit:,})")
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    scope[TOO_LARGE_KEY] = limit  # frameworks may wrap the exception: the app's handler checks this
                    raise _TooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_error(send, 413, f"request body too large (limit {limit:,} bytes)")
