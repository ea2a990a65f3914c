from itertools import pairwise

import pytest
import torch

from mental_r1.contract import STAGE_NAMES, format_completion
from training.stage_masks import IGNORE, stage_index, stage_index_batch, token_char_spans

TEXTS = {"stimulus": "I lost my job last week.", "primary_appraisal": "A serious loss of income.",
         "secondary_appraisal": "Family support, savings.", "reaction": "Worry and poor sleep 😟.",
         "mental_state": "Yes, the poster suffers from stress."}


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stage_text(tokenizer, ids, stages, k):
    return tokenizer.decode([i for i, s in zip(ids, stages) if s == k])


def test_well_formed_completion(tokenizer):
    text = format_completion(TEXTS, "yes") + tokenizer.eos_token
    ids = ids_of(tokenizer, text)
    stages = stage_index(tokenizer, ids)
    assert len(stages) == len(ids)
    for k, name in enumerate(STAGE_NAMES):
        assert stage_text(tokenizer, ids, stages, k).strip() == TEXTS[name]
    assert stages[0] == 0  # stimulus starts at token 0: its opening tag is in the prompt's prefill
    assert stages[-1] == IGNORE  # EOS
    tail = ids_of(tokenizer, "</mental_state>\n</think>\n<answer>yes</answer>")
    assert stages[-len(tail) - 1:] == [IGNORE] * (len(tail) + 1)  # tags and answer get no entropy term
    # every tag token is excluded
    assert "<" not in "".join(tokenizer.decode([i]) for i, s in zip(ids, stages) if s != IGNORE)


def test_truncated_inside_a_stage_and_inside_a_tag(tokenizer):
    full = format_completion(TEXTS, "yes")
    cut = full[: full.index("Worry and poor") + len("Worry and")]
    ids = ids_of(tokenizer, cut)
    stages = stage_index(tokenizer, ids)
    assert stage_text(tokenizer, ids, stages, 3).strip() == "Worry and"
    assert 4 not in stages
    cut_tag = full[: full.index("</reaction>") + len("</react")]
    ids = ids_of(tokenizer, cut_tag)
    stages = stage_index(tokenizer, ids)
    assert stage_text(tokenizer, ids, stages, 3).strip() == TEXTS["reaction"]  # "</react" is not content


def test_malformed_missing_duplicate_and_untagged(tokenizer):
    text = ("An event.</stimulus>\n<secondary_appraisal>Some help.</secondary_appraisal>\n"
            "<stimulus>again</stimulus>\n<reaction>Fear.</reaction>")
    ids = ids_of(tokenizer, text)
    stages = stage_index(tokenizer, ids)
    assert stage_text(tokenizer, ids, stages, 0) == "An event."
    assert 1 not in stages and 4 not in stages  # missing stages
    assert stage_text(tokenizer, ids, stages, 2) == "Some help."
    assert stage_text(tokenizer, ids, stages, 3) == "Fear."
    assert "again" not in tokenizer.decode([i for i, s in zip(ids, stages) if s != IGNORE])  # duplicate
    babble = ids_of(tokenizer, "the model never writes a tag")  # a base model's output
    assert stage_index(tokenizer, babble) == [0] * len(babble)
    assert stage_index(tokenizer, []) == []


def test_non_canonical_tokenization_uses_the_decoding_fallback(tokenizer):
    texts = TEXTS | {"reaction": "Worry and poor sleep."}  # a split emoji is only partly kept on this path
    text = format_completion(texts, "yes")
    pieces = text.split("lost")
    ids = ids_of(tokenizer, pieces[0]) + [i for ch in "lost" for i in ids_of(tokenizer, ch)] + ids_of(tokenizer, pieces[1])
    assert ids != ids_of(tokenizer, text)  # sampling can produce this; re-encoding does not round-trip
    spans = token_char_spans(tokenizer, ids, tokenizer.decode(ids))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    stages = stage_index(tokenizer, ids)
    for k, name in enumerate(STAGE_NAMES):
        assert stage_text(tokenizer, ids, stages, k).strip() == texts[name]


def test_batch_pads_with_ignore(tokenizer):
    a = ids_of(tokenizer, "x</stimulus>")
    b = ids_of(tokenizer, "one two three four five six")
    T = max(len(a), len(b))
    ids = torch.full((2, T), tokenizer.pad_token_id)
    mask = torch.zeros(2, T, dtype=torch.long)
    for r, row in enumerate((a, b)):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    out = stage_index_batch(tokenizer, ids, mask)
    assert out.dtype == torch.long and out.shape == (2, T)
    assert out[0].tolist() == [0] + [IGNORE] * (T - 1)
    assert out[1, : len(b)].tolist() == [0] * len(b)
    assert (out[1, len(b):] == IGNORE).all()


@pytest.mark.parametrize("answer_text", ["<answer>yes</answer>", "<answer>yes"])
def test_answer_tokens_are_excluded(tokenizer, answer_text):
    text = "a</stimulus>\n" + answer_text
    ids = ids_of(tokenizer, text)
    stages = stage_index(tokenizer, ids)
    assert stage_text(tokenizer, ids, stages, 0) == "a"
    assert set(stages[1:]) == {IGNORE}


def test_reasoning_mask_stops_at_the_first_decision_token():
    from training.stage_masks import reasoning_mask

    ms = STAGE_NAMES.index("mental_state")
    stage = torch.tensor([[0, -1, 1, 2, 3, -1, ms, ms, -1, -1],    # well formed: stops at mental_state
                          [0, 1, -1, -1, -1, -1, -1, -1, -1, -1],  # no decision (truncated): keeps every token
                          [ms, ms, -1, 3, -1, -1, -1, -1, -1, -1]])  # decision first: nothing is reasoning
    assert reasoning_mask(stage).tolist() == [[1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [1] * 10, [0] * 10]
