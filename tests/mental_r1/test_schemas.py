import json

import pytest
from pydantic import ValidationError

from mental_r1.schemas import (
    AssessRequest,
    TaskAssessment,
    Usage,
    first_invalid_code_point,
    short_repr,
    uncertainty_note,
)


@pytest.mark.parametrize("raw", [r'"\ud800"', r'"ok \udfff then"', r'"\udc00\ud800"', r'"a\ud83d"'])
def test_lone_surrogates_are_invalid_unicode(raw):
    text = json.loads(raw)  # JSON carries them; the tokenizer cannot take them
    with pytest.raises(ValidationError, match="invalid Unicode"):
        AssessRequest(text=text)
    assert first_invalid_code_point(text) is not None


def test_valid_unicode_is_accepted():
    for text in ("😢 ok", json.loads(r'"\ud83d\ude22"'), "नमस्ते", "\u0000 nul", "\ufeff bom", "\U0010ffff"):
        assert AssessRequest(text=text).text == text
        assert first_invalid_code_point(text) is None


def test_unknown_task_is_named_by_a_short_escaped_prefix_only():
    long_id = "DR" + "x" * 5000 + json.loads(r'"\ud800"')
    with pytest.raises(ValidationError) as e:
        AssessRequest(text="hi", tasks=[long_id, "also-unknown"])
    msg = str(e.value.errors()[0]["msg"])
    assert "unknown task 'DRxxxxxxxxxxxxxxxxxxxxxx'..." in msg and "(and 1 more)" in msg
    assert len(msg) < 200 and msg.isascii()
    assert short_repr("ab\ud800") == "'ab\\ud800'"


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


def test_a_dataset_id_stands_for_all_of_its_tasks():
    irf = ["Irf:thwarted_belongingness", "Irf:perceived_burdensomeness"]
    assert AssessRequest(text="hi", tasks=["Irf"]).task_ids == irf
    assert AssessRequest(text="hi", task="Irf").task_ids == irf
    assert len(AssessRequest(text="hi", tasks=["MultiWD"]).task_ids) == 6
    # a task id that is also its dataset's id is that task; the order is kept
    assert AssessRequest(text="hi", tasks=["t-sid", "Irf", "DR"]).task_ids == ["t-sid", *irf, "DR"]


def test_tasks_named_twice_after_expansion_are_assessed_once_in_first_order():
    got = AssessRequest(text="hi", tasks=["Irf:perceived_burdensomeness", "DR", "Irf", "DR"]).task_ids
    assert got == ["Irf:perceived_burdensomeness", "DR", "Irf:thwarted_belongingness"]


@pytest.mark.parametrize("names, fragment", [
    (["irf"], "unknown task 'irf'"),  # ids are case-sensitive, as GET /tasks lists them
    (["Irf:"], "unknown task 'Irf:'"),
    (["Irf", "perceived_burdensomeness"], "unknown task 'perceived_burdensomeness'"),
    (["MultiWD", "Irf", "DR"], "names 9 tasks once dataset ids are expanded; at most 8"),
])
def test_anything_else_is_still_refused(names, fragment):
    with pytest.raises(ValidationError) as e:
        AssessRequest(text="hi", tasks=names)
    assert fragment in str(e.value.errors()[0]["msg"])
