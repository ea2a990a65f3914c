"""The service two ways: `server`, the real one (`python -m app` in a subprocess on the embedded default model,
real vLLM engine; for slow tests), and `fake_app`, the real app in this process with the real Assessor on a
fake engine (`fake_engine`, tests/fake_engine.py; for every fast route test)."""

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
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
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
                 MENTAL_R1_API_KEY_HASHES=API_KEY_HASH,
                 MENTAL_R1_MAX_QUEUED_REQUESTS="4", MENTAL_R1_MAX_TEXT_CHARS="2000")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


# ------------------------------------------------------------------------------ the app on a fake engine
@pytest.fixture
def fake_engine(tokenizer):
    """This test's fake engine (tests/fake_engine.py): the engine of every `fake_app` the test makes."""
    from tests.fake_engine import FakeEngine

    return FakeEngine(tokenizer)


@pytest.fixture
def fake_app(monkeypatch, fake_engine):
    """`make(**settings)` → the real app (create_app) whose model is the real Assessor on `fake_engine`
    (tests/app/fake_service.py); the MENTAL_R1_* environment is cleared, so only `settings` apply."""
    from app.settings import Settings

    from .fake_service import app_on

    for k in [k for k in os.environ if k.startswith("MENTAL_R1_")]:
        monkeypatch.delenv(k)

    def make(**settings):
        return app_on(fake_engine, Settings(**settings))

    return make
