import pytest
from pydantic import ValidationError

from mental_r1.schemas import TaskAssessment, Usage, uncertainty_note


def assessment(**kw) -> TaskAssessment:
    probs = {"yes": 0.55, "no": 0.45}
    return TaskAssessment(**{"task": "DR", "question": "q", "label": "yes", "label_text": "t", "confidence": 0.55,
                             "probabilities": probs, "label_logprobs": {"yes": -0.6, "no": -0.8}, "stages": [],
                             "format_valid": True, "format_issues": [], "usage": Usage(), **kw})


def test_label_set_defaults_to_the_label_and_says_when_it_is_uncertain():
    a = assessment()
    assert a.label_set == ["yes"] and a.uncertain is None
    b = assessment(label_set=["yes", "no"])
    assert b.uncertain == "uncertain between yes and no"
    dumped = b.model_dump()
    assert dumped["label_set"] == ["yes", "no"] and dumped["uncertain"] == "uncertain between yes and no"
    assert TaskAssessment.model_validate(dumped) == b  # a response read back (the batch --url path)
    assert uncertainty_note(["work", "school", "family issues"]) == "uncertain between work, school and family issues"
    assert uncertainty_note(["work"]) is None


@pytest.mark.parametrize("bad", [["no", "yes"], ["yes", "yes"]])
def test_label_set_starts_with_the_label_and_holds_each_label_once(bad):
    with pytest.raises(ValidationError, match="label_set must start with the label"):
        assessment(label_set=bad)


def test_label_set_and_uncertain_are_documented_in_the_response_schema():
    props = TaskAssessment.model_json_schema(mode="serialization")["properties"]
    assert "90 %" in props["label_set"]["description"]
    assert "uncertain between yes and no" in props["uncertain"]["description"]
