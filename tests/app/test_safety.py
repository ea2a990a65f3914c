import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from app.main import create_app
from app.safety import DISCLAIMER, CrisisResources, record_metrics, safety_block
from app.settings import Settings
from mental_r1.schemas import ModelInfo, StageText, TaskAssessment, Usage
from mental_r1.screen.model import MODEL_SCREEN, ModelScreen

SECRET = "Zebra-sentinel-7731 why am I still alive"  # must never leave the request


def assessment(task="t-sid", label="suicide or self-harm tendency"):
    stages = [StageText(name="mental_state", title="Mental state", text="t")]
    return TaskAssessment(task=task, question="q", label=label, label_text="t", confidence=0.9,
                          probabilities={label: 0.9}, label_logprobs={label: -0.1}, stages=stages, format_valid=True,
                          format_issues=[], usage=Usage())


def test_a_missed_label_cannot_hide_explicit_text():
    res = CrisisResources()
    s = safety_block("I am going to kill myself tonight", [assessment(label="no mental disorders")], res, None)
    assert s.crisis and s.level == "crisis" and s.resources and s.disclaimer == DISCLAIMER
    assert [(x.source, x.category) for x in s.signals] == [("text", "suicidal_ideation")]
    calm = safety_block("Lovely walk today", [assessment(label="no mental disorders")], res, "en-US")
    assert not calm.crisis and calm.level == "none" and calm.resources == [] and calm.signals == []


def test_crisis_is_true_and_resources_attached_at_every_flagged_level():
    res = CrisisResources()
    concern = safety_block("I feel like such a burden", [], res, "en-US")
    assert concern.level == "concern" and concern.crisis and any("988" in r.contact for r in concern.resources)
    model = safety_block("An ordinary day.", [], res, "en-GB", {"t-sid": 0.8}, ModelScreen("m@1", {"t-sid": 0.5}))
    assert model.level == "concern" and model.crisis and [s.source for s in model.signals] == ["model"]
    assert any("116 123" in r.contact for r in model.resources)
    asked = safety_block("An ordinary day.", [assessment("Irf:perceived_burdensomeness", "yes")], res, None)
    assert asked.crisis and [s.method for s in asked.signals] == ["assessment"]


def test_locale_resolution_and_config_file(tmp_path):
    res = CrisisResources()
    assert any("988" in r.contact for r in res.for_locale("en-US"))
    assert any("116 123" in r.contact for r in res.for_locale("en_GB"))
    assert any("findahelpline" in r.contact for r in res.for_locale("fr-FR"))
    assert res.for_locale(None) == res.for_locale("xx")
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"default": [{"name": "D", "contact": "1"}], "de": [{"name": "Telefonseelsorge",
                                                                               "contact": "0800 111 0 111"}]}))
    custom = CrisisResources.from_file(f)
    assert custom.for_locale("de-DE")[0].name == "Telefonseelsorge"  # language fallback
    assert custom.for_locale("en-US")[0].name == "D"
    with pytest.raises(ValueError, match="default"):
        CrisisResources({"US": []})


def test_metrics_count_flags_by_source_and_level_without_text():
    s = safety_block(SECRET + ". I'm a burden.", [], CrisisResources(), None, {"t-sid": 0.9},
                     ModelScreen("m@1", {"t-sid": 0.5}))
    before = generate_latest().decode()
    record_metrics(s)
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


@pytest.mark.parametrize("locale, first", [("en-US", "911"), ("en-GB", "999"), ("en-IE", "112 or 999"),
                                           ("fr-FR", "your local emergency number")])
def test_an_attempt_in_progress_puts_the_emergency_number_first(locale, first):
    s = safety_block("I took 40 of my sleeping pills an hour ago", [], CrisisResources(), locale)
    assert s.level == "crisis" and s.urgent and s.resources[0].emergency and s.resources[0].contact.startswith(first)
    calm = CrisisResources().for_locale(locale)
    assert sorted(s.resources, key=lambda r: r.name) == sorted(calm, key=lambda r: r.name)  # the same, reordered
    ideation = safety_block("I want to die", [], CrisisResources(), locale)
    assert not ideation.urgent and ideation.resources == calm  # the helplines first, as configured


def test_someone_elses_attempt_in_progress_is_urgent_too_but_not_a_past_or_denied_one():
    res = CrisisResources()
    witness = safety_block("my flatmate just swallowed a whole bottle of pills", [], res, "en-US")
    assert witness.urgent and witness.level == "concern" and witness.resources[0].contact == "911"
    for text in ("Ten years ago I took 40 of my pills and survived", "I haven't taken 40 of my pills"):
        s = safety_block(text, [], res, "en-US")
        assert not s.urgent and s.resources[0].contact == "call or text 988", text


def test_a_resources_file_without_an_emergency_number_is_a_warning(caplog):
    CrisisResources({"default": [{"name": "E", "contact": "112", "emergency": True}],
                     "US": [{"name": "988 Lifeline", "contact": "988"}]})
    assert "crisis resources of US mark no emergency number" in caplog.text


def test_the_route_answers_urgent_with_the_emergency_number_first():
    app = stub_app(0.0, None)
    r = TestClient(app).post("/assess", json={"text": "The rope is up and I'm on the chair", "task": "DR",
                                              "locale": "en-US"})
    safety = r.json()["safety"]
    assert r.status_code == 200 and safety["urgent"] is True and safety["level"] == "crisis"
    assert safety["resources"][0] == {"name": "Emergency services", "contact": "911", "available": None,
                                      "emergency": True}
    assert [s["category"] for s in safety["signals"]] == ["attempt_in_progress"]
