"""The crisis screen's level rule and model source (thresholds, signals), on hand-made inputs."""

import json
import math

import pytest

from mental_r1.schemas import SafetySignal, StageText, TaskAssessment, Usage
from mental_r1.screen import overall_level, screen, text_signals, urgent
from mental_r1.screen.model import (
    MODEL_SCREEN,
    THRESHOLDS_FILE,
    ModelScreen,
    assessment_signals,
    load_model_screen,
    model_key,
    model_signals,
    risk_probability,
    write_model_screen,
)
from mental_r1.tasks import TASKS

SCREEN = ModelScreen("m@1", {"t-sid": 0.3, "Irf:perceived_burdensomeness": 0.9})


def assessment(task="t-sid", label="suicide or self-harm tendency", p=0.7):
    probs = {lab: (p if lab == label else (1 - p) / (len(TASKS[task].labels) - 1)) for lab in TASKS[task].label_names}
    return TaskAssessment(task=task, question="q", label=label, label_text="t", confidence=p, probabilities=probs,
                          label_logprobs={lab: -1.0 for lab in probs}, format_valid=True, format_issues=[],
                          stages=[StageText(name="mental_state", title="Mental state", text="t")], usage=Usage())


@pytest.mark.parametrize("text, level", [
    ("We baked bread today.", "none"),
    ("I'm such a burden to everyone", "concern"),         # a CONCERN category
    ("I would never kill myself", "concern"),              # a negated CRISIS phrase
    ("my friend said she wants to die", "concern"),        # someone else's risk
    ("I'm a burden and I want to die", "crisis"),          # the highest level wins
    ("I wrote letters to my family tonight", "none"),      # a MENTION alone is no signal
    ("I gave my guitar away. I'm such a burden", "crisis"),  # a preparation with a warning sign beside it
    ("I just need to die", "crisis"),
])
def test_level_of_text(text, level):
    assert screen(text)[0] == level


def test_model_signals_are_concerns_at_or_above_the_threshold():
    got = model_signals({"t-sid": 0.3, "Irf:perceived_burdensomeness": 0.89}, SCREEN)
    assert [(s.source, s.category, s.level, s.method, s.task, s.probability) for s in got] == [
        ("model", "suicide_or_self_harm", "concern", "screen", "t-sid", 0.3)]
    assert model_signals({"t-sid": 0.99}, None) == []  # a model without thresholds has no model source
    off = ModelScreen("m@1", {"Irf:perceived_burdensomeness": 0.5})  # t-sid off
    assert model_signals({"t-sid": 0.99, "Irf:perceived_burdensomeness": 0.2}, off) == []


def test_both_sources_and_the_requested_risk_tasks_are_reported():
    level, signals = screen("I can't take this anymore", [assessment(), assessment("DR", "yes")],
                            {"t-sid": 0.5, "Irf:perceived_burdensomeness": 0.1}, SCREEN)
    assert level == "concern"
    assert {(s.source, s.category, s.method) for s in signals} == {
        ("text", "hopelessness", None), ("model", "suicide_or_self_harm", "screen"),
        ("model", "suicide_or_self_harm", "assessment")}
    crisis, _ = screen("I want to kill myself", [], {"t-sid": 0.0}, SCREEN)
    assert crisis == "crisis"  # a model below threshold cannot lower the text's level


def test_assessment_signals_only_for_the_risk_label():
    assert [s.probability for s in assessment_signals([assessment(p=0.61)])] == [0.61]
    assert assessment_signals([assessment(label="depression")]) == []
    pb = assessment_signals([assessment("Irf:perceived_burdensomeness", "yes", 0.8)])
    assert [(s.category, s.task) for s in pb] == [("perceived_burdensomeness", "Irf:perceived_burdensomeness")]


def test_overall_level_order():
    sig = [SafetySignal(source="model", category="x", level="concern"),
           SafetySignal(source="text", category="y", level="crisis")]
    assert overall_level([]) == "none" and overall_level(sig[:1]) == "concern" and overall_level(sig) == "crisis"


def test_signals_never_hold_the_text():
    text = "Zebra-sentinel-7731: I want to kill myself, my friend cuts herself, I'm a burden"
    level, signals = screen(text, [assessment()], {"t-sid": 0.9}, SCREEN)
    dumped = json.dumps([s.model_dump() for s in signals])
    assert level == "crisis"
    assert not any(w in dumped for w in ("Zebra", "sentinel", "kill myself", "cuts herself", "I'm a burden"))
    assert all(set(s.model_dump()) == set(SafetySignal.model_fields) for s in signals)


def test_risk_probability_is_the_softmax_at_the_risk_label():
    logps = {"no mental disorders": math.log(0.2), "suicide or self-harm tendency": math.log(0.1),
             "depression": math.log(0.6), "PTSD": math.log(0.1)}
    assert risk_probability("t-sid", logps) == pytest.approx(0.1)
    assert risk_probability("Irf:perceived_burdensomeness", {"yes": -1.0, "no": -1.0}) == pytest.approx(0.5)


def test_screen_tasks_are_known_tasks_with_their_risk_label():
    for task, (risk, _) in MODEL_SCREEN.items():
        assert risk in TASKS[task].label_names


def test_model_key_drops_the_content_hash():
    assert model_key("Mental-R1-135M", "1.0.0+sha256:abcdef123456") == "Mental-R1-135M@1.0.0"
    assert model_key("run", "sha256:abcdef123456") == "run@sha256:abcdef123456"


def test_thresholds_file_round_trip(tmp_path, caplog):
    path = tmp_path / "thresholds.json"
    with pytest.raises(FileNotFoundError, match="MENTAL_R1_SCREEN_THRESHOLDS_FILE"):
        load_model_screen("m", "1.0.0", path)
    path.write_text("{}")
    assert load_model_screen("m", "1.0.0", path) is None and "model source of the screen is off" in caplog.text
    write_model_screen("m@1.0.0", {"t-sid": 0.25, "Irf:perceived_burdensomeness": None}, {"on": "part A"}, path)
    got = load_model_screen("m", "1.0.0+sha256:0123", path)
    assert got == ModelScreen("m@1.0.0", {"t-sid": 0.25}, provisional=False) and got.tasks == ["t-sid"]
    path.write_text(json.dumps({"m@1.0.0": {"thresholds": {"DR": 0.5}}}))
    with pytest.raises(ValueError, match="thresholds must be probabilities of the tasks"):
        load_model_screen("m", "1.0.0", path)


def test_the_shipped_default_model_has_a_clearly_marked_entry():
    shipped = json.loads(THRESHOLDS_FILE.read_text())["Mental-R1-135M@1.0.0"]
    screen_ = load_model_screen("Mental-R1-135M", "1.0.0+sha256:x")
    assert screen_ is not None and set(screen_.tasks) <= set(MODEL_SCREEN)
    if shipped.get("provisional"):
        assert "PROVISIONAL" in shipped["note"]
    else:
        assert shipped["fitted"]["part_b"]["recall"] is not None  # measured: the report part's figures


def test_text_signals_are_text_sourced():
    (s,) = text_signals("I'm such a burden to my family")
    assert (s.source, s.category, s.level, s.subject, s.negated) == (
        "text", "perceived_burdensomeness", "concern", "self", False)


@pytest.mark.parametrize("text, expected", [
    ("I've already swallowed the whole packet", True),
    ("i took them all twenty minutes ago. getting sleepy", True),
    ("my brother has taken 30 of his tablets and won't wake up", True),   # a witness: the emergency number first
    ("I want to die", False),
    ("Years ago I swallowed a whole bottle of pills", False),
])
def test_urgent_is_an_attempt_in_progress(text, expected):
    assert urgent(screen(text)[1]) is expected


def test_the_issues_example_is_a_crisis():
    level, signals = screen("i wrote letters to my mum and my sister tonight. everyone will be better off when i'm gone")
    assert level == "crisis" and {s.category for s in signals} == {"preparations", "perceived_burdensomeness"}
