"""The HTTP server `python -m app` runs: uvicorn with bounded connections, a drain on SIGTERM, and an
optional second listener for the ops endpoints.

Limits (Settings; tested in tests/app/test_server.py and test_bad_input.py):
- `max_connections`: open connections served at once (uvicorn's limit_concurrency); a request on a
  connection beyond it gets uvicorn's plain 503 and the connection is closed.
- `max_header_bytes`: request line + headers. h11 stops buffering an incomplete head at this size (400 and
  close; its max_incomplete_event_size), which bounds the memory a client can pin; a head that arrives
  complete in one read is measured by app.middleware.RequestLimits (431). The h11 protocol is used, not
  httptools, which has no such limit.
- `header_timeout_s`: a connection must deliver a complete request head within this time of connecting or
  of its previous response, else it is closed (idle, trickling or stalled clients); uvicorn has no such
  deadline of its own. `keep_alive_s` (uvicorn's timeout_keep_alive) closes idle keep-alive connections sooner.
- the body's size and read time are checked by app.middleware.RequestLimits.
"""

from __future__ import annotations

import asyncio
import socket

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for every request head (class attribute `header_timeout_s`)."""

    header_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None if self.transport.is_closing() else self.loop.call_later(
            self.header_timeout_s, self._head_deadline_passed)

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        # IDLE: no complete request head since the deadline was armed (the state moves on at the head's end)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class DrainingServer(uvicorn.Server):
    """Marks the app as draining (→ /readyz 503, new /assess 503) the moment a shutdown signal arrives."""

    def handle_exit(self, sig, frame) -> None:
        app = self.config.loaded_app
        while app is not None and not hasattr(app, "state"):  # unwrap uvicorn's middleware
            app = getattr(app, "app", None)
        if app is not None:
            app.state.draining = True
        super().handle_exit(sig, frame)


def server_config(app, settings: Settings, **overrides) -> uvicorn.Config:
    protocol = type("BoundedH11", (BoundedH11Protocol,), {"header_timeout_s": settings.header_timeout_s})
    kwargs = {"host": settings.host, "port": settings.port, "workers": 1, "http": protocol,
              "limit_concurrency": settings.max_connections + 1,  # uvicorn counts the new connection too
              "h11_max_incomplete_event_size": settings.max_header_bytes,
              "timeout_keep_alive": settings.keep_alive_s,
              # the drain: 0 cancels in-flight requests at once (None would wait for them forever)
              "timeout_graceful_shutdown": settings.drain_timeout_s, "log_level": "info"}
    return uvicorn.Config(app, **{**kwargs, **overrides})


def bind_sockets(config: uvicorn.Config, settings: Settings) -> list[socket.socket]:
    """The API listener, and the ops listener when `ops_port` is set (app.middleware.OpsEndpoints decides
    which paths each one serves)."""
    sockets = [config.bind_socket()]
    if settings.ops_port is not None:
        sockets.append(uvicorn.Config(config.app, host=settings.ops_host, port=settings.ops_port).bind_socket())
    for s in sockets:
        s.set_inheritable(False)  # the engine's processes must not hold the ports
    return sockets
