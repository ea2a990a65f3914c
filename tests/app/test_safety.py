import json
import logging

from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from app.main import create_app
from app.metrics import record_safety
from app.settings import Settings
from mental_r1.safety import CrisisResources, safety_block
from mental_r1.schemas import ModelInfo, StageText, TaskAssessment, Usage
from mental_r1.screen.model import MODEL_SCREEN, ModelScreen

SECRET = "Zebra-sentinel-7731 why am I still alive"  # must never leave the request


def assessment(task="t-sid", label="suicide or self-harm tendency"):
    stages = [StageText(name="mental_state", title="Mental state", text="t")]
    return TaskAssessment(task=task, question="q", label=label, label_text="t", confidence=0.9,
                          probabilities={label: 0.9}, label_logprobs={label: -0.1}, stages=stages, format_valid=True,
                          format_issues=[], usage=Usage())


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


class StubAssessor:
    """The Assessor's interface without an engine: records what the route asked for."""

    def __init__(self, risk: float):
        self.risk, self.calls = risk, []

    def reasoning_budget(self, text, task, requested):
        return requested

    async def assess(self, text, task, opts, request_id=None):
        self.calls.append(("assess", task.id))
        return assessment(task.id, task.label_names[0])

    async def risk_probabilities(self, text, task_ids, request_id):
        self.calls.append(("screen", tuple(task_ids)))
        return dict.fromkeys(task_ids, self.risk)


def stub_app(risk: float, model_screen: ModelScreen | None):
    """The service with a stub at the Assessor boundary. No `with TestClient(...)`: the lifespan, which would
    build the engine, never runs; the state it would set is set here."""
    settings = Settings()
    app = create_app(settings)
    s = app.state
    s.settings, s.resources, s.engine, s.model_info = settings, CrisisResources(), None, ModelInfo(name="stub",
                                                                                                   version="0")
    s.ready, s.draining, s.engine_dead, s.in_flight, s.load_error = True, False, False, 0, None
    s.assessor, s.model_screen, s.rate_limiter = StubAssessor(risk), model_screen, None
    return app


def test_the_screen_runs_when_only_dr_is_requested(caplog):
    caplog.set_level(logging.DEBUG)
    screen = ModelScreen("stub@0", {t: 0.5 for t in MODEL_SCREEN})
    app = stub_app(0.7, screen)
    r = TestClient(app).post("/assess", json={"text": SECRET, "task": "DR", "locale": "en-US"})
    assert r.status_code == 200, r.text
    assert sorted(app.state.assessor.calls) == [("assess", "DR"), ("screen", tuple(MODEL_SCREEN))]
    safety = r.json()["safety"]
    assert safety["level"] == "crisis" and safety["crisis"] is True
    assert {(s["source"], s["category"]) for s in safety["signals"]} == {
        ("text", "death_wish"), ("model", "suicide_or_self_harm"), ("model", "perceived_burdensomeness")}
    assert any("988" in x["contact"] for x in safety["resources"])
    assert "Zebra" not in json.dumps(safety) and "alive" not in json.dumps(safety)
    assert "Zebra" not in caplog.text and "still alive" not in caplog.text


def test_without_thresholds_the_model_source_is_off_and_the_text_source_still_runs():
    app = stub_app(0.99, None)
    r = TestClient(app).post("/assess", json={"text": "I can't take this anymore", "task": "DR"})
    assert r.status_code == 200, r.text
    assert app.state.assessor.calls == [("assess", "DR")]
    assert [(s["source"], s["level"]) for s in r.json()["safety"]["signals"]] == [("text", "concern")]


def test_a_calm_post_below_the_thresholds_is_not_flagged():
    app = stub_app(0.1, ModelScreen("stub@0", {"t-sid": 0.5}))
    r = TestClient(app).post("/assess", json={"text": "We baked bread and walked the dog.", "task": "DR"})
    assert r.json()["safety"] | {"disclaimer": None} == {"disclaimer": None, "crisis": False, "level": "none",
                                                         "urgent": False, "signals": [], "resources": []}


def test_the_route_answers_urgent_with_the_emergency_number_first():
    app = stub_app(0.0, None)
    r = TestClient(app).post("/assess", json={"text": "The rope is up and I'm on the chair", "task": "DR",
                                              "locale": "en-US"})
    safety = r.json()["safety"]
    assert r.status_code == 200 and safety["urgent"] is True and safety["level"] == "crisis"
    assert safety["resources"][0] == {"name": "Emergency services", "contact": "911", "available": None,
                                      "emergency": True}
    assert [s["category"] for s in safety["signals"]] == ["attempt_in_progress"]
