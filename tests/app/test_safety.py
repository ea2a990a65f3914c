"""The safety block: its metrics, and through the route on a fake engine (tests/fake_engine.py) whose model
gives the crisis screen's risk labels a chosen probability."""

import json
import logging
from contextlib import contextmanager

import pytest
from prometheus_client import generate_latest

from app.metrics import record_safety
from mental_r1.safety import CrisisResources, safety_block
from mental_r1.screen.model import MODEL_SCREEN, ModelScreen, model_key
from tests.fake_engine import leaning

from .fake_service import MODEL, ready_client

SECRET = "Zebra-sentinel-7731 why am I still alive"  # must never leave the request


def test_metrics_count_flags_by_source_and_level_without_text():
    s = safety_block(SECRET + ". I'm a burden.", [], CrisisResources(), None, {"t-sid": 0.9},
                     ModelScreen("m@1", {"t-sid": 0.5}))
    before = generate_latest().decode()
    record_safety(s)
    after = generate_latest().decode()
    assert _count(after, 'mental_r1_safety_flags_total{level="crisis",source="text"}') == \
        _count(before, 'mental_r1_safety_flags_total{level="crisis",source="text"}') + 1
    assert _count(after, 'mental_r1_safety_flags_total{level="concern",source="model"}') >= 1
    assert _count(after, 'mental_r1_crisis_flags_total{signal="death_wish"}') >= 1
    assert "Zebra" not in after and "alive" not in after


def _count(exposition: str, series: str) -> float:
    line = next((x for x in exposition.splitlines() if x.startswith(series)), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


@pytest.fixture
def screened(fake_app, fake_engine, tmp_path):
    """`serve(risk, thresholds)` → a client of the service (fake engine) whose model gives each risk label of the
    crisis screen probability `risk`, with the screen's `thresholds` for the model (None: none, screen off)."""

    @contextmanager
    def serve(risk: float, thresholds: dict[str, float] | None):
        path = tmp_path / "thresholds.json"
        path.write_text(json.dumps({model_key(MODEL.name, MODEL.version): {"thresholds": thresholds}}
                                   if thresholds else {}))
        fake_engine.probabilities = {t: leaning(t, MODEL_SCREEN[t][0], risk) for t in MODEL_SCREEN}
        app = fake_app(screen_thresholds_file=path)
        with ready_client(app) as c:
            yield c

    return serve


def requested(engine) -> list[tuple[str, str]]:
    """What the route asked the engine for: ("assess", task) per reasoning, ("screen", task) per task scored by
    the crisis screen (its requests are named `<request>-screen-…`)."""
    return sorted([("assess", r.task) for r in engine.generations()]
                  + [("screen", r.task) for r in engine.requests if "-screen-" in r.request_id])


def test_the_screen_runs_when_only_dr_is_requested(screened, fake_engine, caplog):
    caplog.set_level(logging.DEBUG)
    with screened(0.7, {t: 0.5 for t in MODEL_SCREEN}) as c:
        r = c.post("/assess", json={"text": SECRET, "task": "DR", "locale": "en-US"})
    assert r.status_code == 200, r.text
    assert requested(fake_engine) == sorted([("assess", "DR"), *(("screen", t) for t in MODEL_SCREEN)])
    safety = r.json()["safety"]
    assert safety["level"] == "crisis" and safety["crisis"] is True
    assert {(s["source"], s["category"]) for s in safety["signals"]} == {
        ("text", "death_wish"), ("model", "suicide_or_self_harm"), ("model", "perceived_burdensomeness")}
    assert any("988" in x["contact"] for x in safety["resources"])
    assert "Zebra" not in json.dumps(safety) and "alive" not in json.dumps(safety)
    assert "Zebra" not in caplog.text and "still alive" not in caplog.text


def test_without_thresholds_the_model_source_is_off_and_the_text_source_still_runs(screened, fake_engine):
    with screened(0.99, None) as c:
        r = c.post("/assess", json={"text": "I can't take this anymore", "task": "DR"})
    assert r.status_code == 200, r.text
    assert requested(fake_engine) == [("assess", "DR")]
    assert [(s["source"], s["level"]) for s in r.json()["safety"]["signals"]] == [("text", "concern")]


def test_a_calm_post_below_the_thresholds_is_not_flagged(screened):
    with screened(0.1, {"t-sid": 0.5}) as c:
        r = c.post("/assess", json={"text": "We baked bread and walked the dog.", "task": "DR"})
    assert r.json()["safety"] | {"disclaimer": None} == {"disclaimer": None, "crisis": False, "level": "none",
                                                         "urgent": False, "signals": [], "resources": []}


def test_the_route_answers_urgent_with_the_emergency_number_first(screened):
    with screened(0.0, None) as c:
        r = c.post("/assess", json={"text": "The rope is up and I'm on the chair", "task": "DR", "locale": "en-US"})
    safety = r.json()["safety"]
    assert r.status_code == 200 and safety["urgent"] is True and safety["level"] == "crisis"
    assert safety["resources"][0] == {"name": "Emergency services", "contact": "911", "available": None,
                                      "emergency": True}
    assert [s["category"] for s in safety["signals"]] == ["attempt_in_progress"]
