"""app/protocol.py: what POST /assess accepts (the request model's validation)."""

import json

import pytest
from pydantic import ValidationError

from app.protocol import AssessRequest, first_invalid_code_point, short_repr


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
