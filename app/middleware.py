"""ASGI middleware of the service: request-body limits, security headers, and where the ops endpoints live.

Connection-level limits (connections, header size, header read time) are uvicorn's and live in
app/server.py; these act once a request's head has been read.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from app.errors import error_response

CLOSE = {"Connection": "close"}  # the rest of a rejected body is not read: the connection cannot be reused

# Endpoints for operators, not clients: Prometheus metrics (per-label and crisis counters reveal individual
# results) and the API schema and docs.
OPS_PATHS = frozenset({"/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin")]


class RequestLimits:
    """A request's head must fit in `header_limit` bytes (431), its body in `body_limit` bytes (413), and the
    body must arrive within `body_timeout_s` of the first read (408).

    The head: uvicorn's h11 bounds what it buffers of an incomplete head (app/server.py), but a head that
    arrives complete in one read passes that bound; it is measured here. The body is checked while the app
    reads it, so a chunked body is stopped as soon as it passes the limit and a stalled or trickling body as
    soon as its time is up. Those errors are raised as HTTPExceptions from `receive`, which FastAPI passes
    on unchanged to the error envelope (any other exception there would become its 400 "error parsing the
    body"). Reads after the body (the disconnect watch) are not timed. Every rejection closes the connection.
    """

    def __init__(self, app, header_limit: int, body_limit: int, body_timeout_s: float):
        self.app, self.header_limit, self.limit, self.timeout_s = app, header_limit, body_limit, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
            len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
        if head > self.header_limit:
            return await error_response(431, f"request headers exceed {self.header_limit} bytes",
                                        headers=CLOSE)(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await error_response(413, self._too_large, headers=CLOSE)(scope, receive, send)
        seen, done, deadline = 0, False, None

        async def guarded_receive():
            nonlocal seen, done, deadline
            if done:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise HTTPException(408, f"request body not received within {self.timeout_s:g} s",
                                    headers=CLOSE) from None
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, self._too_large, headers=CLOSE)
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, guarded_receive, send)

    @property
    def _too_large(self) -> str:
        return f"request body exceeds {self.limit} bytes"


class SecurityHeaders:
    """Headers on every response the app sends: no caching of assessments (`Cache-Control: no-store` unless
    a route set its own), no MIME sniffing, no framing, no referrer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OpsEndpoints:
    """Serve the ops endpoints (OPS_PATHS) where the settings put them.

    - `ops_port` set: only on connections to that port, and that port serves nothing else (404).
    - no `ops_port`, development: on the API port, as any other route.
    - no `ops_port`, production: nowhere (404).
    """

    def __init__(self, app, ops_port: int | None, production: bool):
        self.app, self.ops_port, self.production = app, ops_port, production

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_ops = scope["path"] in OPS_PATHS
        if self.ops_port is not None:
            on_ops_port = (scope.get("server") or (None, None))[1] == self.ops_port
            allowed = is_ops == on_ops_port
        else:
            allowed = not (is_ops and self.production)
        if not allowed:
            return await error_response(404, "Not Found")(scope, receive, send)
        await self.app(scope, receive, send)
