"""The real app on a fake engine: create_app with a loader that returns the real Assessor (real tokenizer) on a
FakeEngine (tests/fake_engine.py). Routes, auth, validation, admission, the error envelope, the lifespan's
load and warm-up, the Assessor and the safety block run as in the service; only the engine is fake.

    app = app_on(engine, Settings(...))       # or the `fake_app` fixture (tests/app/conftest.py)
    with ready_client(app) as c:               # TestClient, once the fake model is loaded and warmed up
        engine.fail = EngineDeadError()         # then make the engine misbehave
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from mental_r1.assessor import Assessor
from mental_r1.calibration import Calibration
from mental_r1.schemas import ModelInfo
from mental_r1.tasks import TASKS
from tests.fake_engine import FakeEngine

MODEL = ModelInfo(name="fake", version="0+sha256:0")  # no crisis-screen thresholds in the shipped file
# a conformal label-set threshold for every task: with the fake engine's default 0.6 for the first label, a yes/no
# task's set holds both labels (0.6, 0.4) and a task with more labels the first alone
CALIBRATION = Calibration(label_set_threshold=dict.fromkeys(TASKS, 0.35))


def fake_assessor(engine: FakeEngine, max_model_len: int = 2048) -> Assessor:
    return Assessor(engine, engine.tokenizer, CALIBRATION, max_model_len, model=MODEL)


def app_on(engine: FakeEngine, settings: Settings) -> FastAPI:
    """The service of `settings` whose model is the fake assessor on `engine`."""
    return create_app(settings, load=lambda s: fake_assessor(engine, s.max_model_len))


def _check_loading(app: FastAPI) -> bool:
    assert not app.state.load_error, f"the fake model did not load: {app.state.load_error}"
    return app.state.ready


def _forget_warm_up(app: FastAPI) -> None:
    app.state.engine.requests.clear()  # the warm-up's: a test sees only its own requests


def wait_ready(app: FastAPI, timeout: float = 30) -> None:
    """Until the lifespan (running in TestClient's or a server's thread) has loaded and warmed up the model."""
    deadline = time.monotonic() + timeout
    while not _check_loading(app):
        assert time.monotonic() < deadline, "the fake model did not get ready"
        time.sleep(0.01)
    _forget_warm_up(app)


async def until_ready(app: FastAPI, timeout: float = 30) -> None:
    """wait_ready from inside the app's own event loop (under app.router.lifespan_context)."""
    deadline = time.monotonic() + timeout
    while not _check_loading(app):
        assert time.monotonic() < deadline, "the fake model did not get ready"
        await asyncio.sleep(0.01)
    _forget_warm_up(app)


@contextmanager
def ready_client(app: FastAPI, **kw) -> Iterator[TestClient]:
    with TestClient(app, **kw) as client:
        wait_ready(app)
        yield client
