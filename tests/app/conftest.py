"""The service two ways: the real one (`python -m app` in a subprocess, real vLLM engine; for slow tests), and
`fake_app`, the real app in this process with the real Assessor on a fake engine (`fake_engine`,
tests/fake_engine.py; for every fast route test).

An engine start costs 35-60 s, so the real service is started once per model and settings for all of tests/app
(package scope: stopped when tests/app is done, before the training tests need the memory), and shared by every
slow test that only needs it running:
- `server`: the embedded default model (test_service, test_page, test_fuzz's prompt injection, test_faults'
  disconnect test, test_cli's --url run);
- `tiny_server`: a tiny random model in production mode (test_bad_input, test_fuzz's schema fuzzing);
- `flag_all_server`: the embedded default model with crisis-screen thresholds of 0 (test_screen_engine);
- `idle_death_server`: a tiny random model whose engine test_faults kills while it is idle (its only user).
The services the selected tests use are all launched together when tests/app starts (`launched`): a start is
mostly one core's worth of imports and loading, so on a 2-core machine the starts overlap with each other and
with the fast tests instead of running one after another (2026-12-07: 114 s for the four together against
40 + 52 + 30 + 34 s in sequence). Each `Server` watches its own start in a thread (recording what the service
answers while it loads, `early`); a fixture waits for that.
A test that stops or breaks a shared service is marked `stops_server(name)` (default `server`) and runs right
after the last other test that uses it (pytest_collection_modifyitems below): test_service's SIGTERM drain stops
`server`, test_faults kills `tiny_server`'s API process and `flag_all_server`'s and `idle_death_server`'s engines.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-0123456789"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
SECRET_TEXT = "Zebra-sentinel-7731 I want to kill myself tonight"  # must never appear in the logs
REPO = Path(__file__).resolve().parents[2]
# the tiny service's limits, which test_bad_input measures (its fake-engine twin runs with the same settings)
TINY_MAX_TEXT_CHARS, TINY_HEADER_TIMEOUT_S, TINY_BODY_TIMEOUT_S = 4000, 2, 2
START_BUDGET_S = 600  # several services start at once on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m app` on a free port with the test settings and `env`; its start is watched in a thread
    (`wait_ready` joins it), so several services can start at once."""

    def __init__(self, tmp: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the ops endpoints (/metrics, /openapi.json): on their own port if one is set, else on the API port
        ops_port = env.get("MENTAL_R1_OPS_PORT")
        self.ops_url = f"http://127.0.0.1:{ops_port}" if ops_port else self.url
        self.log_path = tmp / "server.log"
        full_env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                    "MENTAL_R1_KV_CACHE_GIB": "0.5", "MENTAL_R1_MAX_NUM_SEQS": "8", **env}
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(self.port)], cwd=REPO,
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.early: dict[str, httpx.Response] = {}
        self._start_error: BaseException | None = None
        self._ready = threading.Event()
        self._watcher = threading.Thread(target=self._watch_start, name=f"watch-{self.port}", daemon=True)
        self._watcher.start()

    def client(self, key: str | None = API_KEY, timeout: float = 300) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def _watch_start(self, budget: float = START_BUDGET_S) -> None:
        """Poll /readyz until 200; the first 503 seen while the model loads is kept with /livez's and /assess's
        answers at that moment (`early`, test_service)."""
        try:
            deadline = time.time() + budget
            with self.client() as c:
                while time.time() < deadline:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"the service exited with {self.proc.returncode} while starting")
                    try:
                        r = c.get("/readyz")
                    except httpx.TransportError:
                        time.sleep(0.3)
                        continue
                    if r.status_code == 200:
                        self._ready.set()
                        return
                    if "readyz" not in self.early:  # observed while the model loads
                        self.early["readyz"] = r
                        self.early["livez"] = c.get("/livez")
                        self.early["assess"] = c.post("/assess", json={"text": "hello"})
                    time.sleep(0.5)
            raise TimeoutError(f"service not ready in {budget} s")
        except BaseException as e:  # noqa: BLE001 - handed to wait_ready, in the test's thread
            self._start_error = e

    def wait_ready(self) -> None:
        self._watcher.join(START_BUDGET_S + 60)
        if not self._ready.is_set():
            raise AssertionError(f"the service did not start: {self._start_error!r}\n{self.logs()[-3000:]}")

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


def uses(item: pytest.Item, service: str) -> bool:
    """Whether a test uses the shared service `service`: it requests the fixture, or says so with
    `uses_server(service)` (test_bad_input's engine case, which gets `tiny_server` from getfixturevalue)."""
    return service in item.fixturenames or any(service in m.args for m in item.iter_markers("uses_server"))


SHARED_SERVICES = ("server", "tiny_server", "flag_all_server", "idle_death_server")
_selected_services: list[str] = []  # the shared services the selected tests use (set after collection)


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected tests
def pytest_collection_modifyitems(items):
    """A test marked `stops_server(name)` (default `server`) moves to right after the last other selected test
    that uses that service (every other test keeps its order), so no test after it finds the service gone.
    Also notes which shared services the selected tests use: `launched` starts just those."""
    for stopper in [item for item in items if item.get_closest_marker("stops_server")]:
        service = (stopper.get_closest_marker("stops_server").args or ("server",))[0]
        at = items.index(stopper)
        last = max(k for k, item in enumerate(items) if uses(item, service))  # >= at
        items.insert(last, items.pop(at))
    _selected_services[:] = [name for name in SHARED_SERVICES if any(uses(item, name) for item in items)]


def tiny_service_env() -> dict[str, str]:
    """The settings of `tiny_server` (test_bad_input's fake-engine twin takes them too): production mode with an
    API key and an ops port (a new free one per call), and tight connection limits."""
    return {"MENTAL_R1_ENV": "production", "MENTAL_R1_API_KEY_HASHES": API_KEY_HASH,
            "MENTAL_R1_OPS_PORT": str(free_port()), "MENTAL_R1_MAX_QUEUED_REQUESTS": "16",
            "MENTAL_R1_MAX_TEXT_CHARS": str(TINY_MAX_TEXT_CHARS),
            "MENTAL_R1_HEADER_TIMEOUT_S": str(TINY_HEADER_TIMEOUT_S),
            "MENTAL_R1_BODY_TIMEOUT_S": str(TINY_BODY_TIMEOUT_S), "MENTAL_R1_MAX_CONNECTIONS": "64"}


def launch(name: str, tmp_path_factory, base_model_dir) -> Server:
    """Start the shared service `name` (without waiting for it; see the module docstring for each one)."""
    if name == "server":  # as the README serves it, with an API key, 4 tasks in flight and 2,000 characters
        return Server(tmp_path_factory.mktemp("server"), MENTAL_R1_API_KEY_HASHES=API_KEY_HASH,
                      MENTAL_R1_MAX_QUEUED_REQUESTS="4", MENTAL_R1_MAX_TEXT_CHARS="2000")
    if name in ("tiny_server", "idle_death_server"):  # a tiny random Llama with the real tokenizer
        from training.models import build_tiny_model

        tmp = tmp_path_factory.mktemp(name.replace("_", "-"))
        model = build_tiny_model(base_model_dir, tmp / "model", seed=0)
        env = tiny_service_env() if name == "tiny_server" else {}
        return Server(tmp, MENTAL_R1_MODEL=str(model), **env)
    if name == "flag_all_server":  # crisis-screen thresholds of 0.0 (provisional) for the default model
        from mental_r1.default_model import ensure_default_model
        from mental_r1.loading import model_info
        from mental_r1.screen.model import MODEL_SCREEN, model_key

        tmp = tmp_path_factory.mktemp("screen")
        info = model_info(ensure_default_model(), None)
        thresholds = tmp / "thresholds.json"
        thresholds.write_text(json.dumps({model_key(info.name, info.version): {
            "thresholds": dict.fromkeys(MODEL_SCREEN, 0.0), "provisional": True}}))
        return Server(tmp, MENTAL_R1_SCREEN_THRESHOLDS_FILE=str(thresholds), MENTAL_R1_MAX_TEXT_CHARS="2000")
    raise ValueError(f"unknown shared service {name!r}")


@pytest.fixture(scope="package", autouse=True)
def launched(request, tmp_path_factory):
    """Every shared service the selected tests use, started at once when tests/app starts (name → Server); its
    fixture takes it from here. Whatever no fixture took (a run stopped early) is stopped with tests/app."""
    servers: dict[str, Server] = {}
    try:
        for name in _selected_services:  # none for a run of fast tests only: no base model needed then
            servers[name] = launch(name, tmp_path_factory, request.getfixturevalue("base_model_dir"))
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()


def shared(name: str, launched: dict[str, Server], tmp_path_factory, base_model_dir):
    """The body of a shared service's fixture: the launched service (or a new one: a test that reached it
    without the collection hook knowing), once it is ready; stopped when tests/app ends."""
    srv = launched.pop(name, None) or launch(name, tmp_path_factory, base_model_dir)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="package")
def server(launched, tmp_path_factory, base_model_dir):
    """The embedded default model (Mental-R1-135M), as the README serves it, with an API key (API_KEY), 4
    assessment tasks in flight at most and 2,000 characters of text. Shared by every slow test that needs the
    trained model's answers; `server.early` holds the answers observed while it loaded (test_service)."""
    yield from shared("server", launched, tmp_path_factory, base_model_dir)


@pytest.fixture(scope="package")
def tiny_server(launched, tmp_path_factory, base_model_dir):
    """A tiny random Llama with the real tokenizer (training.models.build_tiny_model, seed 0) behind the real
    service, with tiny_service_env(): a valid request costs milliseconds of generation, so hundreds of hostile
    and fuzzed requests fit in a CI run. Shared by test_bad_input and test_fuzz; neither may leave a 500, a
    traceback or request text in its log (test_bad_input's last test reads the whole log)."""
    yield from shared("tiny_server", launched, tmp_path_factory, base_model_dir)


@pytest.fixture(scope="package")
def flag_all_server(launched, tmp_path_factory, base_model_dir):
    """The embedded default model behind a service whose crisis-screen thresholds flag every post (0.0,
    marked provisional), so every response shows the model's risk probabilities (test_screen_engine);
    development mode, no API key, 2,000 characters of text. test_faults' dead-engine test kills its engine
    last (any default-model service does for that test)."""
    yield from shared("flag_all_server", launched, tmp_path_factory, base_model_dir)


@pytest.fixture(scope="package")
def idle_death_server(launched, tmp_path_factory, base_model_dir):
    """A tiny random model behind the service in development mode, for test_faults' idle engine death only (a
    service can be ended only once)."""
    yield from shared("idle_death_server", launched, tmp_path_factory, base_model_dir)


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
