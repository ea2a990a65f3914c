"""Connection limits of the real entry point, measured with hostile clients (no engine needed).

    .venv/bin/python -m bench.connections            # default limits, ~1 minute; bench/results/connections-<date>.json

Starts `python -m app` in production mode with an API key, an ops port and an empty model folder (the engine
never loads: connection handling does not depend on it) and the default connection settings, then measures
what each limit does to a hostile client: when idle, trickling and keep-alive connections are closed, when a
stalled body gets its 408, where header size is cut off, what happens past max_connections, and the
service's memory (RSS) while clients hold the maximum of connections or push megabytes of headers.
The checks with small limits are tests/app/test_server.py; this records the figures at the defaults.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from app.settings import Settings
from bench.provenance import provenance
from bench.servers import REPO, free_port

KEY = "bench-connections-key"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=60)


def status(sock: socket.socket, head: bytes) -> int:
    sock.sendall(head)
    r = http.client.HTTPResponse(sock)
    r.begin()
    r.read()
    return r.status


def until_closed(sock: socket.socket, drip: bytes = b"", every: float = 1.0) -> float:
    """Seconds until the server closes the connection, sending `drip` every `every` seconds meanwhile."""
    t0 = time.monotonic()
    sock.settimeout(every)
    while True:
        try:
            if not sock.recv(65536):
                return round(time.monotonic() - t0, 2)
        except TimeoutError:
            if drip:
                try:
                    sock.sendall(drip)
                except OSError:
                    return round(time.monotonic() - t0, 2)
        except OSError:
            return round(time.monotonic() - t0, 2)


def rss_mib(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def main() -> None:
    defaults = Settings()
    started = os.getloadavg()
    port, ops = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MENTAL_R1_")}, "MENTAL_R1_ENV": "production",
           "MENTAL_R1_API_KEY_HASHES": hashlib.sha256(KEY.encode()).hexdigest(), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as empty:
        log = open(Path(empty) / "log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "app", "--model", empty, "--port", str(port),
                                 "--ops-port", str(ops)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            result = measure(proc.pid, port, defaults)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "provenance": provenance(started),
              "settings": {k: getattr(defaults, k) for k in (
                  "max_connections", "max_header_bytes", "header_timeout_s", "keep_alive_s", "body_timeout_s",
                  "max_body_bytes")}, **result}
    out = REPO / "bench" / "results" / f"connections-{dt.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def measure(pid: int, port: int, s: Settings) -> dict:
    deadline = time.time() + 60
    while True:
        try:
            with connect(port) as sock:
                status(sock, b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n")
            break
        except OSError:
            assert time.time() < deadline, "service did not start"
            time.sleep(0.3)
    out: dict = {"rss_idle_mib": rss_mib(pid)}

    def idle():
        with connect(port) as sock:
            return until_closed(sock)

    def trickle():
        with connect(port) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: b\r\n")
            return until_closed(sock, drip=b"X-Slow: 1\r\n", every=1.0)

    def keep_alive():
        with connect(port) as sock:
            status(sock, b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n")
            return until_closed(sock)

    def stalled_body():
        with connect(port) as sock:
            t0 = time.monotonic()
            code = status(sock, f"POST /assess HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {KEY}\r\n"
                                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"text\": \"".encode())
            return code, round(time.monotonic() - t0, 2)

    with cf.ThreadPoolExecutor(4) as pool:  # the timeouts run side by side
        jobs = {k: pool.submit(f) for k, f in (("idle_closed_after_s", idle), ("trickling_head_closed_after_s", trickle),
                                                ("keep_alive_closed_after_s", keep_alive),
                                                ("stalled_body", stalled_body))}
        out.update({k: j.result() for k, j in jobs.items()})

    # header size: a complete head just under / over the limit, and a head that never ends
    for n in (s.max_header_bytes - 200, s.max_header_bytes + 200):
        with connect(port) as sock:
            out[f"head_of_{n}_bytes"] = status(sock, b"GET /livez HTTP/1.1\r\nHost: b\r\nX-Big: " + b"a" * n
                                                + b"\r\n\r\n")
    with connect(port) as sock:
        sent = 0
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: b\r\nX-Huge: ")
        sock.settimeout(0.05)
        while True:
            try:
                sock.sendall(b"a" * 4096)
                sent += 4096
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        out["endless_head_answered_after_bytes"] = sent

    def push_8_mib():
        try:
            with connect(port) as sock:
                sock.sendall(b"GET /livez HTTP/1.1\r\nHost: b\r\nX-Huge: ")
                for _ in range(512):
                    sock.sendall(b"a" * 16384)
            return False
        except OSError:
            return True

    with cf.ThreadPoolExecutor(50) as pool:
        cut = list(pool.map(lambda _: push_8_mib(), range(50)))
    out["endless_heads_50_clients"] = {"cut_off": sum(cut), "rss_after_mib": rss_mib(pid)}

    # connections: hold max_connections, then one more
    held = []
    for _ in range(s.max_connections - 1):
        held.append(connect(port))
    with connect(port) as sock:
        last_served = status(sock, b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n")
        held.append(sock)
        with connect(port) as extra:
            over = status(extra, b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n")
        out["max_connections"] = {"held": len(held), "last_served": last_served, "one_more": over,
                                  "rss_holding_mib": rss_mib(pid)}
        held.pop()
    for sock in held:
        sock.close()

    # body size: a chunked body past the limit
    with connect(port) as sock:
        chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
        head = (f"POST /assess HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json"
                "\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        out["chunked_body_over_limit"] = status(sock, head + chunk * (s.max_body_bytes // 4096 + 2))
    out["rss_end_mib"] = rss_mib(pid)
    return out


if __name__ == "__main__":
    main()
