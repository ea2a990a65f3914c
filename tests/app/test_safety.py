import json

import pytest

from app.safety import DISCLAIMER, CrisisResources, assessment_signals, safety_block, text_signals
from mental_r1.schemas import StageText, TaskAssessment, Usage


@pytest.mark.parametrize("text, expected", [
    ("I want to kill myself", {"suicidal_ideation"}),
    ("thinking about ending my life", {"suicidal_ideation"}),
    ("everyone would be better off without me", {"suicidal_ideation"}),
    ("I started cutting myself again", {"self_harm"}),
    ("I could hurt someone when I'm like this", {"violent_thoughts"}),
    ("This movie killed it, I laughed to death", set()),
    ("I went to a self-help workshop", set()),
    ("My exam is killing me", set()),
])
def test_text_signals(text, expected):
    assert text_signals(text) == expected


def assessment(task="t-sid", label="suicide or self-harm tendency", mental_state="sad"):
    stages = [StageText(name="mental_state", title="Mental state", text=mental_state)]
    return TaskAssessment(task=task, question="q", label=label, label_text="t", confidence=0.9,
                          probabilities={label: 0.9}, label_logprobs={label: -0.1}, stages=stages, format_valid=True,
                          format_issues=[], usage=Usage())


def test_assessment_signals_from_label_and_stage():
    assert assessment_signals(assessment()) == {"suicidal_ideation"}
    assert assessment_signals(assessment(label="depression")) == set()
    assert assessment_signals(assessment(label="PTSD", mental_state="signs of suicidal ideation")) == \
        {"suicidal_ideation"}
    assert assessment_signals(assessment("Irf:perceived_burdensomeness", "yes")) == {"perceived_burdensomeness"}


def test_missed_label_cannot_hide_explicit_text():
    res = CrisisResources()
    s = safety_block("I am going to kill myself tonight", [assessment(label="no mental disorders")], res, None)
    assert s.crisis and s.resources and s.disclaimer == DISCLAIMER
    calm = safety_block("Lovely walk today", [assessment(label="no mental disorders")], res, "en-US")
    assert not calm.crisis and calm.resources == [] and calm.disclaimer == DISCLAIMER


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
