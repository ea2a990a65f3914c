from mental_r1.contract import parse_completion
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.sft_targets import sft_target, stage_texts, three_parts

DR = get_task("DR")
EXPL = "The poster feels empty. They cannot sleep. They avoid friends. They mention hopelessness."


def test_three_parts_by_sentence_then_by_word():
    assert three_parts(EXPL) == ["The poster feels empty. They cannot sleep.", "They avoid friends.",
                                 "They mention hopelessness."]
    assert three_parts("Only one sentence here, really.") == ["Only one", "sentence here,", "really."]


def test_stage_layout():
    ex = Example("DR", DR, "I lost my job. Nothing helps.", "yes", EXPL)
    texts = stage_texts(ex)
    assert texts["stimulus"] == "I lost my job."
    assert texts["reaction"] == "They mention hopelessness."
    assert texts["mental_state"] == "Yes, the poster suffers from depression."
    short = stage_texts(ex, max_stage_words=2)
    assert short["primary_appraisal"] == "The poster"
    assert all(len(t.split()) <= 2 for t in short.values())


def test_target_parses_as_valid_with_the_label_as_answer():
    target = sft_target(Example("DR", DR, "I lost my job.", "no", EXPL), max_stage_words=5)
    parsed = parse_completion(target)
    assert parsed.valid, parsed.issues
    assert parsed.answer == "no"
    assert not target.startswith("<think>")  # the prefill belongs to the prompt


def test_no_explanation_no_target():
    assert sft_target(Example("DR", DR, "post", "yes", None)) is None
