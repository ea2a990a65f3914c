"""Faults on a real service: the engine dies (under load or idle), the API process is killed, a client goes away.

A fault ends a service, so the tests that cause one do it to a shared service as its last user (`stops_server`,
tests/app/conftest.py): the engine dying under load is `flag_all_server`'s, the killed API process is
`tiny_server`'s. The idle engine death needs a service of its own (a shared one can be ended only once):
`idle_death_server`, started with the shared ones.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow


def engine_core_pids(server_pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(server_pid).children(recursive=True) if "EngineCore" in " ".join(
        p.cmdline() or [p.name()]) or p.name().startswith("VLLM::EngineCor")]


@pytest.mark.stops_server("flag_all_server")
def test_dead_engine_turns_readyz_red_and_requests_into_503(flag_all_server):
    srv = flag_all_server  # the default model without an API key; its screen thresholds play no part here
    try:
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
        srv.stop()  # its last user: free the memory now, not when tests/app ends


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.stops_server("idle_death_server")
def test_engine_death_while_idle_is_noticed_and_shutdown_does_not_hang(idle_death_server):
    srv = idle_death_server  # a tiny model of its own, started with the shared services
    try:
        for pid in engine_core_pids(srv.proc.pid):  # no request in flight: nothing else will notice
            os.kill(pid, signal.SIGKILL)
        with srv.client(key=None, timeout=30) as c:
            deadline = time.time() + 30
            while time.time() < deadline and c.get("/readyz").status_code == 200:
                time.sleep(0.5)
            assert c.get("/readyz").status_code == 503
            t0 = time.time()
            r = c.post("/assess", json={"text": "hello", "max_tokens": 32})
            assert r.status_code == 503 and time.time() - t0 < 10 and "retry-after" in r.headers
            assert c.get("/livez").status_code == 503
        t0 = time.time()
        srv.proc.terminate()  # shutting down with a dead engine must not hang
        assert srv.proc.wait(60) in (0, -signal.SIGTERM)
        assert time.time() - t0 < 60
    finally:
        srv.stop()


@pytest.mark.stops_server("tiny_server")
def test_killed_api_process_leaves_no_engine_processes_behind(tiny_server):
    srv = tiny_server  # production mode: the request carries the API key
    children: list[psutil.Process] = []
    try:
        children = descendants(srv.proc.pid)
        assert engine_core_pids(srv.proc.pid), "no EngineCore child found"

        def call():
            with srv.client(timeout=60) as c:
                try:
                    c.post("/assess", json={"text": "A long week.", "tasks": ["SAD", "CAMS"], "max_tokens": 512})
                except httpx.TransportError:
                    pass  # expected: the server is killed under this request

        t = threading.Thread(target=call)
        t.start()
        time.sleep(1.0)
        srv.proc.kill()  # SIGKILL: no shutdown code runs in the API process
        srv.proc.wait(10)
        deadline = time.time() + 30
        while time.time() < deadline and alive(children):
            time.sleep(0.5)
        left = [(p.pid, p.name()) for p in alive(children)]
        assert not left, f"engine processes outlived the API process: {left}"
        t.join(60)
    finally:
        for p in alive(children):  # only if the check above failed
            p.kill()
        srv.stop()


def trie_nodes(tokenizer, task) -> int:
    """Scoring requests the Assessor sends for a task: one per branching node of the label-sentence token trie."""
    from mental_r1.label_trie import branch_nodes, label_continuations

    return len(branch_nodes([tokenizer(c, add_special_tokens=False)["input_ids"] for c in label_continuations(task)]))


def screen_requests() -> int:
    """Engine requests of the crisis screen's model source per /assess: one per risk task with a threshold."""
    from mental_r1.default_model import ensure_default_model
    from mental_r1.loading import model_info
    from mental_r1.screen.model import load_model_screen

    info = model_info(ensure_default_model(), None)
    screen = load_model_screen(info.name, info.version)
    return len(screen.tasks) if screen else 0


def test_disconnect_aborts_only_that_requests_generations(server, tokenizer):
    """One client asks for three tasks and goes away while another request is in flight: the other is answered,
    the engine ends up idle, and fewer engine requests finish than the two assessments would have needed
    (vLLM does not count client aborts in its metrics: aborted requests show up as never finishing)."""
    from mental_r1.tasks import TASKS

    from .test_service import metric

    def finished(m: str) -> float:
        return sum(metric(m, "vllm:request_success_total", finished_reason=r) for r in ("stop", "length"))

    with server.client() as c:
        m0 = c.get("/metrics").text
    ours0 = metric(m0, "mental_r1_aborted_total")
    other = {}

    def steady():
        with server.client() as c:
            other["r"] = c.post("/assess", json={"text": "Busy week, but fine.", "task": "DR", "max_tokens": 64})

    t = threading.Thread(target=steady)
    t.start()
    with pytest.raises(httpx.ReadTimeout), server.client(timeout=1.0) as c:
        c.post("/assess", json={"text": "Nothing helps.", "tasks": ["DR", "SAD", "t-sid"], "max_tokens": 512})
    t.join(300)
    assert other["r"].status_code == 200, other["r"].text
    deadline = time.time() + 120  # un-aborted 512-token generations would finish (and count) within this
    with server.client() as c:
        while time.time() < deadline:
            m = c.get("/metrics").text
            if metric(m, "vllm:num_requests_running") == 0 and metric(m, "vllm:num_requests_waiting") == 0:
                break
            time.sleep(0.5)
    assert metric(m, "vllm:num_requests_running") == 0
    assert metric(m, "mental_r1_aborted_total") == ours0 + 1
    # each assessment = its generation + one request per branching node of its label trie, and each request
    # adds the crisis screen's requests; if nothing had been aborted, all of the steady request's and all of
    # the abandoned request's engine requests would have finished
    steady_work = 1 + trie_nodes(tokenizer, TASKS["DR"]) + screen_requests()
    abandoned_work = sum(1 + trie_nodes(tokenizer, TASKS[t]) for t in ("DR", "SAD", "t-sid")) + screen_requests()
    done = finished(m) - finished(m0)
    assert steady_work <= done < steady_work + abandoned_work, (done, steady_work, abandoned_work)
