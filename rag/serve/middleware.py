"""ASGI middleware that runs before any route: API keys, and a limit on request body size.

Both answer in OpenAI's error shape without reading more than they must: the key is checked before the
body is read, and a body is cut off as soon as it passes the limit (also when it is sent chunked, without a
Content-Length). What this module does not do: per-field limits (`rag.serve.app`) or rate limiting.
"""

from __future__ import annotations

import hmac
import json

from .config import ServeConfig
from .errors import APIError


class Auth:
    """Every /v1 request needs `Authorization: Bearer KEY` with a configured key (compared in constant time
    per key, so a timing attack learns nothing). /health and /v1/health need none."""

    def __init__(self, app, serve: ServeConfig):
        self.app, self.serve = app, serve
        self.keys = [k.encode() for k in serve.api_keys]

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or self.serve.no_auth
            or not scope["path"].startswith("/v1/")
            or scope["path"] == "/v1/health"
        ):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            error = APIError(401, "missing API key: send the header 'Authorization: Bearer KEY'", "invalid_api_key")
        elif not any(hmac.compare_digest(token, key) for key in self.keys):
            error = APIError(401, "invalid API key", "invalid_api_key")
        else:
            return await self.app(scope, receive, send)
        await send_error(send, error, [(b"www-authenticate", b"Bearer")])


class BodyLimit:
    """413 for a request body over `limit` bytes, whether declared (Content-Length) or streamed (chunked).
    The body is read here, counted, and handed on whole; later messages (a disconnect) pass through."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _too_large(send, self.limit)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later messages (a disconnect) come from the client

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    await send_error(send, APIError(413, f"the request body is larger than {limit} bytes", "body_too_large"))


async def send_error(send, error: APIError, headers: list | None = None) -> None:
    """Answer `error` directly on the ASGI connection (outside FastAPI's exception handling)."""
    body = json.dumps(error.body()).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (headers or [])
    await send({"type": "http.response.start", "status": error.status, "headers": head})
    await send({"type": "http.response.body", "body": body})
