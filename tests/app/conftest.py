"""A real service: `python -m app` in a subprocess on the embedded default model (real vLLM engine)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-0123456789"
SECRET_TEXT = "Zebra-sentinel-7731 I want to kill myself tonight"  # must never appear in the logs
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        full_env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                    "MENTAL_R1_KV_CACHE_GIB": "0.5", "MENTAL_R1_MAX_NUM_SEQS": "8", **env}
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(self.port)], cwd=REPO,
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.early: dict[str, httpx.Response] = {}

    def client(self, key: str | None = API_KEY, timeout: float = 300) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def wait_ready(self, budget: float = 300) -> None:
        deadline = time.time() + budget
        with self.client() as c:
            while time.time() < deadline:
                assert self.proc.poll() is None, self.logs()[-3000:]
                try:
                    r = c.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.3)
                    continue
                if r.status_code == 200:
                    return
                if "readyz" not in self.early:  # observed while the model loads
                    self.early["readyz"] = r
                    self.early["livez"] = c.get("/livez")
                    self.early["assess"] = c.post("/assess", json={"text": "hello"})
                time.sleep(0.5)
        raise TimeoutError(f"service not ready in {budget} s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory, base_model_dir):
    srv = Server(tmp_path_factory.mktemp("server"),
                 MENTAL_R1_API_KEY_HASHES=hashlib.sha256(API_KEY.encode()).hexdigest(),
                 MENTAL_R1_MAX_QUEUED_REQUESTS="4", MENTAL_R1_MAX_TEXT_CHARS="2000")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


# ------------------------------------------------------------------------- the app without an engine
class StubAssessor:
    """Stands in for mental_r1.assessor.Assessor: `result` is returned by assess (an exception is raised)."""

    def __init__(self, result=None):
        self.result, self.calls = result, []

    def reasoning_budget(self, text, task, requested):
        return requested

    async def assess(self, text, task, opts, request_id=None):
        from mental_r1.schemas import TaskAssessment, Usage

        self.calls.append((task.id, opts.max_tokens))
        if isinstance(self.result, BaseException):
            raise self.result
        label = task.labels[0]
        return TaskAssessment(task=task.id, question=task.question, label=label.short, label_text=label.text,
                              confidence=1.0, probabilities={label.short: 1.0}, label_logprobs={label.short: 0.0},
                              stages=[], format_valid=True, format_issues=[], usage=Usage())


@pytest.fixture
def engine_free_app(monkeypatch):
    """`make(assessor, **settings)` → the real app (create_app: routes, middleware, error handlers) whose
    model loader is skipped; `ready(app, assessor)` inside a running client marks it ready with `assessor`."""
    from app import main
    from app.settings import Settings

    async def no_load(app, settings):
        return None

    monkeypatch.setattr(main, "_load", no_load)
    for k in [k for k in os.environ if k.startswith("MENTAL_R1_")]:
        monkeypatch.delenv(k)

    def make(**settings):
        return main.create_app(Settings(**settings))

    return make


def ready(app, assessor) -> None:
    from mental_r1.schemas import ModelInfo

    app.state.assessor, app.state.ready = assessor, True
    app.state.model_info = ModelInfo(name="stub", version="0")
