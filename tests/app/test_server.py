"""Connection limits against a real uvicorn server: the app of create_app (on a fake engine: the `fake_app`
fixture) served with exactly the uvicorn configuration `python -m app` uses (app.server.server_config and
bind_sockets), in a thread (tests/app/threaded_server.py); raw sockets play the hostile clients. The last test
runs `python -m app` itself.

Every limit is measured: the time or size at which the server cut the client off is asserted to lie within
bounds of the setting.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from app.settings import Settings

from .conftest import REPO, free_port
from .threaded_server import serving as serving_app

KEY = "server-test-key-0123"
KEY_HASH = hashlib.sha256(KEY.encode()).hexdigest()


@contextmanager
def serving(fake_app, **settings):
    """The app (with a /boom route that raises) on a real uvicorn server, configured as `python -m app`
    configures it; yields its settings."""
    settings.setdefault("port", free_port())
    app = fake_app(**settings)

    @app.get("/boom", include_in_schema=False)
    async def boom():
        raise RuntimeError("boom Zebra-sentinel-7731")

    s = Settings(**settings)
    with serving_app(app, s):
        yield s


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def request(sock: socket.socket, path: str = "/livez", method: str = "GET", headers: str = "",
            body: bytes = b"") -> http.client.HTTPResponse:
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    return response(sock)


def response(sock: socket.socket) -> http.client.HTTPResponse:
    r = http.client.HTTPResponse(sock)
    r.begin()
    r.body = r.read()
    return r


def seconds_until_closed(sock: socket.socket, limit: float = 15.0) -> float:
    """Time until the server closes the connection (reads and discards anything it sends)."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return float("inf")
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


@pytest.fixture
def server(fake_app):
    with serving(fake_app, header_timeout_s=1.0, body_timeout_s=1.0, keep_alive_s=1,
                 max_body_bytes=4096, max_header_bytes=16384) as s:
        yield s


# --------------------------------------------------------------------------------------- header read time
def test_idle_connection_is_closed_at_the_header_timeout(server):
    with connect(server.port) as sock:
        took = seconds_until_closed(sock)
    assert 0.8 <= took <= 3.0, took


def test_trickling_headers_are_cut_at_the_header_timeout(server):
    with connect(server.port) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n")
        t0 = time.monotonic()
        with pytest.raises(OSError):  # the server closes while the client is still sending
            for _ in range(100):  # would take 20 s
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.2)
                if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    raise ConnectionResetError("closed")
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.0, took


def test_idle_keep_alive_connection_is_closed(server):
    with connect(server.port) as sock:
        assert request(sock).status == 200
        took = seconds_until_closed(sock)
    assert 0.8 <= took <= 3.0, took


# ----------------------------------------------------------------------------------------- header size
def test_oversized_headers_are_refused_and_the_connection_closed(server):
    with connect(server.port) as sock:
        ok = request(sock, headers="X-Big: " + "a" * 12_000 + "\r\n")  # under the 16 KiB limit
    assert ok.status == 200
    with connect(server.port) as sock:  # over it, in one read: measured by the app
        big = request(sock, headers="X-Big: " + "a" * 17_000 + "\r\n")
        assert big.status == 431 and big.getheader("connection") == "close"
        assert seconds_until_closed(sock, 5) < 5
    with connect(server.port) as sock:  # 64 KiB of a head that never ends: answered without the rest
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Huge: " + b"a" * 65536)
        r = response(sock)
    assert r.status == 400 and r.getheader("connection") == "close"
    with connect(server.port) as sock, pytest.raises(OSError):  # closed by the server: 8 MiB cannot be pushed
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Huge: ")
        for _ in range(8 * 64):
            sock.sendall(b"a" * 16384)


# ------------------------------------------------------------------------------------------- body time
@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_slow_body_gets_408_at_the_body_timeout(server, trickle):
    with connect(server.port) as sock:
        sock.sendall(b"POST /assess HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n" + b'{"text": "')
        t0 = time.monotonic()
        if trickle:
            def drip():
                try:
                    for _ in range(15):  # 3 s of one byte every 0.2 s
                        sock.sendall(b"a")
                        time.sleep(0.2)
                except OSError:
                    pass  # cut off by the server, as it should be

            threading.Thread(target=drip, daemon=True).start()
        r = response(sock)
        took = time.monotonic() - t0
    assert r.status == 408 and b"request_timeout" in r.body, r.body
    assert r.getheader("connection") == "close"
    assert 0.8 <= took <= 3.0, took


def test_chunked_body_over_the_limit_is_413(server):
    with connect(server.port) as sock:
        # one send: the server may answer 413 and close as soon as the limit is passed, and a second send
        # would then fail with BrokenPipeError (flaky under load)
        sock.sendall(b"POST /assess HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + (b"400\r\n" + b"a" * 1024 + b"\r\n") * 8)
        r = response(sock)
    assert r.status == 413 and b"payload_too_large" in r.body


# ---------------------------------------------------------------------------------------- connections
def test_connections_beyond_max_connections_get_503(fake_app):
    with serving(fake_app, max_connections=4, header_timeout_s=30) as s:
        idle = [connect(s.port) for _ in range(3)]
        time.sleep(0.2)
        with connect(s.port) as sock:
            assert request(sock).status == 200  # 4 connections: served
        idle.append(connect(s.port))
        time.sleep(0.2)
        with connect(s.port) as sock:
            refused = request(sock)  # the 5th connection
            closed = seconds_until_closed(sock, 5)
        for c in idle:
            c.close()
        time.sleep(0.3)
        with connect(s.port) as sock:
            again = request(sock)
    assert refused.status == 503 and closed < 5
    assert again.status == 200


# --------------------------------------------------------------------------------------- errors, ops port
def test_a_500_keeps_the_connection_and_logs_no_traceback(server):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "app")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with connect(server.port) as sock:
            boom = request(sock, "/boom")
            after = request(sock, "/livez")  # the same connection
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    assert boom.status == 500 and b'"internal_error"' in boom.body and b"Zebra" not in boom.body
    assert boom.getheader("connection") != "close" and after.status == 200
    messages = [r.getMessage() for r in records]
    assert "unhandled RuntimeError in GET /boom" in messages
    assert not any(r.exc_info for r in records) and not any("Zebra" in m for m in messages)
    assert not any("Exception in ASGI application" in m for m in messages)


def test_ops_endpoints_live_on_their_own_listener(fake_app):
    ops = free_port()
    with (serving(fake_app, env="production", api_key_hashes=KEY_HASH, ops_port=ops) as s,
          connect(s.port) as api, connect(ops) as op):
        api_metrics, api_livez = request(api, "/metrics"), request(api, "/livez")
        ops_metrics, ops_docs, ops_livez = request(op, "/metrics"), request(op, "/openapi.json"), request(op, "/livez")
    assert (api_metrics.status, api_livez.status) == (404, 200)
    assert (ops_metrics.status, ops_docs.status, ops_livez.status) == (200, 200, 404)
    assert b"mental_r1_requests_in_flight" in ops_metrics.body


# ------------------------------------------------------------------------------------ `python -m app` itself
def test_python_m_app_serves_with_these_limits(tmp_path):
    """The entry point wires the same configuration: the process (its model folder is empty, so the engine
    never loads) cuts idle connections and oversized headers, keeps /metrics off the API port in production
    and sends the security headers."""
    port, ops = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MENTAL_R1_")},
           "MENTAL_R1_ENV": "production", "MENTAL_R1_API_KEY_HASHES": KEY_HASH, "MENTAL_R1_MODEL": str(tmp_path),
           "MENTAL_R1_HEADER_TIMEOUT_S": "1", "MENTAL_R1_MAX_HEADER_BYTES": "4096", "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port), "--ops-port", str(ops),
                             "--ops-host", "127.0.0.1"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "log").read_text()[-2000:]
            try:
                with connect(port) as sock:
                    live = request(sock, "/livez")
                break
            except OSError:
                time.sleep(0.2)
        assert live.status == 200 and live.getheader("x-content-type-options") == "nosniff"
        assert live.getheader("cache-control") == "no-store"
        with connect(port) as sock:
            assert request(sock, "/metrics").status == 404
        with connect(ops) as sock:
            assert request(sock, "/metrics").status == 200
        with connect(port) as sock:
            assert request(sock, headers="X-Big: " + "a" * 8000 + "\r\n").status == 431
        with connect(port) as sock:
            took = seconds_until_closed(sock)
        assert 0.8 <= took <= 3.0, took
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
