"""mental_r1/safety.py: the response's safety block (the crisis screen's verdict, resources, disclaimer)."""

import json

import pytest

from mental_r1.safety import DISCLAIMER, CrisisResources, safety_block
from mental_r1.schemas import StageText, TaskAssessment, Usage
from mental_r1.screen.model import ModelScreen


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
