"""Faults on a real service: the inference engine dies under load."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from .conftest import Server

pytestmark = pytest.mark.slow


def engine_core_pids(server_pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(server_pid).children(recursive=True) if "EngineCore" in " ".join(
        p.cmdline() or [p.name()]) or p.name().startswith("VLLM::EngineCor")]


def test_dead_engine_turns_readyz_red_and_requests_into_503(tmp_path, base_model_dir):
    srv = Server(tmp_path, MENTAL_R1_MAX_TEXT_CHARS="2000")
    try:
        srv.wait_ready()
        pids = engine_core_pids(srv.proc.pid)
        assert pids, "no EngineCore child found"
        in_flight = {}

        def call():
            with srv.client(key=None, timeout=120) as c:
                t0 = time.time()
                in_flight["r"] = c.post("/assess", json={"text": "A long week.", "max_tokens": 512})
                in_flight["s"] = time.time() - t0

        t = threading.Thread(target=call)
        t.start()
        time.sleep(1.0)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        t.join(120)
        assert in_flight["r"].status_code == 503, in_flight["r"].text  # failed fast, did not hang
        assert in_flight["r"].json()["error"]["type"] == "unavailable"
        assert in_flight["s"] < 60

        with srv.client(key=None, timeout=30) as c:
            assert c.get("/readyz").status_code == 503
            after = c.post("/assess", json={"text": "hello"})
            assert after.status_code == 503 and "retry-after" in after.headers
            assert c.get("/livez").status_code == 503  # a restart is the fix: liveness fails
        assert srv.proc.poll() is None  # the API process itself stays up and answers
    finally:
        srv.stop()
