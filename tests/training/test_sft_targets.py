from mental_r1.contract import ends_sentence, parse_completion
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.sft_targets import (
    contradicts_label,
    fit_sentences,
    sentences,
    sft_target,
    stage_texts,
    stimulus,
    thirds,
)

DR = get_task("DR")
EXPL = "The poster feels empty. They cannot sleep. They avoid friends. They mention hopelessness."


def words(text: str) -> int:
    return len(text.split())


def test_thirds_by_whole_sentences():
    assert thirds(sentences(EXPL)) == ["The poster feels empty. They cannot sleep.", "They avoid friends.",
                                       "They mention hopelessness."]


def test_fit_sentences_drops_the_longest_inner_sentences_first_and_keeps_three():
    units = ["First one here.", "A much longer inner sentence with many words in it.", "Short inner.",
             "Another inner sentence of seven words.", "The conclusion."]
    assert fit_sentences(units, None, words) == units
    # 3 + 10 + 2 + 6 + 2 = 23 words; dropping the 10-word one leaves 13
    assert fit_sentences(units, 13, words) == [units[0], units[2], units[3], units[4]]
    assert fit_sentences(units, 7, words) == [units[0], units[2], units[4]]  # never fewer than three
    assert fit_sentences(units, 1, words)[0] == units[0] and fit_sentences(units, 1, words)[-1] == units[-1]


def test_stimulus_is_a_whole_post_sentence_that_fits_or_the_fallback():
    assert stimulus("I lost my job. Nothing helps.", "Fallback.", None, words) == "I lost my job."
    assert stimulus("Hi. i cant sleep at all lately", "Fallback.", None, words) == "i cant sleep at all lately."
    long_first = "one two three four five six seven. I feel low today."
    assert stimulus(long_first, "Fallback.", 5, words) == "I feel low today."
    assert stimulus("one two three four five six seven eight", "Fallback.", 5, words) == "Fallback."


def test_stage_layout_has_whole_sentences_that_end_like_sentences():
    ex = Example("DR", DR, "I lost my job. Nothing helps.", "yes", EXPL)
    texts = stage_texts(ex)
    assert texts["stimulus"] == "I lost my job."
    assert texts["reaction"] == "They mention hopelessness."
    assert texts["mental_state"] == "Yes, the poster suffers from depression."
    assert all(ends_sentence(t) for t in texts.values())
    short = stage_texts(ex, words, max_reasoning_tokens=8)  # 4+3+3+3 words: one inner sentence goes
    assert short["primary_appraisal"] == "The poster feels empty."
    assert short["reaction"] == "They mention hopelessness."


def test_target_parses_as_valid_with_the_label_as_answer():
    target = sft_target(Example("DR", DR, "I lost my job.", "no", EXPL), words, 10)
    parsed = parse_completion(target)
    assert parsed.valid, parsed.issues
    assert parsed.answer == "no"
    assert not target.startswith("<think>")  # the prefill belongs to the prompt


def test_no_target_without_three_sentences_or_against_the_label():
    assert sft_target(Example("DR", DR, "post", "yes", None)) is None
    assert sft_target(Example("DR", DR, "post", "yes", "One sentence. Two sentences.")) is None
    against = "Yes, the poster is depressed. They cry. They stay in bed."
    assert contradicts_label(Example("DR", DR, "p", "no", against), sentences(against))
    assert not contradicts_label(Example("DR", DR, "p", "yes", against), sentences(against))
    assert sft_target(Example("DR", DR, "I cry a lot.", "no", against)) is None
    sad = get_task("SAD")
    assert not contradicts_label(Example("SAD", sad, "p", "school", against), sentences(against))
