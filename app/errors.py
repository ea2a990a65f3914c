"""One JSON error envelope for every failure: {"error": {"type", "message", "details"}}.

Handlers never log request bodies: validation details are returned to the client only, with the
offending input values removed (they may hold the text of a post) and field names cut to a short,
escaped prefix. Envelopes are pure ASCII JSON, so no client string can make encoding them fail.

An unexpected exception becomes a 500 envelope here, logged by its type only (its message and traceback
may quote the request), and is not re-raised: uvicorn would log the traceback and drop the keep-alive
connection, failing the client's next request too.

`service_error` is the one map from why an assessment failed (the core's exceptions, mental_r1/errors.py, and
the client's disconnect) to the HTTP answer; the batch command writes the same type and message per row.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mental_r1.errors import EngineBusy, EngineDead, EngineRejected, InvalidText

log = logging.getLogger(__name__)

_TYPES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
          408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type",
          422: "invalid_request", 429: "rate_limited", 431: "headers_too_large", 499: "client_closed",
          500: "internal_error", 503: "unavailable", 504: "timeout"}
RETRY_AFTER = {"Retry-After": "5"}
_LOC_CHARS = 32  # longest field name echoed back in `details`
_MAX_DETAILS = 10  # a body with thousands of bad fields gets the first ten


class ServiceError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class ErrorJSON(JSONResponse):
    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(status: int, message: str, details: list | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": error_type(status), "message": message, "details": details}}
    return ErrorJSON(body, status_code=status, headers=headers)


def _loc_part(p):
    return p if isinstance(p, int) else str(p)[:_LOC_CHARS]


def _clean(errors: list[dict]) -> list[dict]:
    return [{"loc": [_loc_part(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors[:_MAX_DETAILS]]


class ClientDisconnected(Exception):
    """The client went away before its answer was ready (the work was cancelled): a 499 nobody reads."""


def error_type(status: int) -> str:
    return _TYPES.get(status, "error")


def service_error(exc: BaseException) -> ServiceError | None:
    """The HTTP answer to a failed assessment, or None for an unexpected exception (a 500, UnexpectedErrors).
    The messages are the core's own: none quotes the text (mental_r1/errors.py)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ClientDisconnected):
        return ServiceError(499, "client disconnected")
    if isinstance(exc, EngineDead):
        return ServiceError(503, str(exc), RETRY_AFTER)
    if isinstance(exc, EngineBusy):
        return ServiceError(exc.http_status, str(exc), RETRY_AFTER)
    if isinstance(exc, InvalidText | EngineRejected):
        return ServiceError(422, str(exc))
    return None


class UnexpectedErrors:
    """Outermost app middleware: an exception nothing else handled becomes a 500 envelope (or, when the
    response had already started, the end of this response) instead of propagating to the server."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the point of this middleware
            route = getattr(scope.get("route"), "path", "?")  # the route template, never the raw path
            log.error("unhandled %s in %s %s", type(exc).__name__, scope.get("method"), route)
            if not started:
                await error_response(500, "internal error")(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError):
        return error_response(exc.status, exc.message, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = _clean(exc.errors())
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return error_response(422, msg or "invalid request", errors)
