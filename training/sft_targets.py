"""Cold-start SFT targets: an IMHI reference answer laid out across the five appraisal stages, in whole
sentences within a token budget.

An IMHI training answer is `<label sentence>. Reasoning: <explanation>` (GPT-3.5-written, 3–6 sentences).
The target completion (the text after the pre-filled `<think>\\n<stimulus>`, built with
`mental_r1.contract.format_completion`) is:

| stage | content |
|---|---|
| stimulus | the post's first sentence that fits `max_stimulus_tokens` (of its first three), else the explanation's first sentence |
| primary_appraisal | explanation sentences, first third |
| secondary_appraisal | explanation sentences, second third |
| reaction | explanation sentences, last third |
| mental_state | the task's IMHI label sentence, e.g. "Yes, the poster suffers from depression." |
| answer | the short label, exactly as listed in the prompt's options |

Whole sentences only, never a cut at N words (v1 cut every stage at 12 words, and served stages ended
mid-sentence): when the explanation's sentences exceed `max_reasoning_tokens`, the longest sentences
between its first and its last are dropped until they fit or three remain. The first sentence usually
describes the post and the last states the conclusion, the one that agrees with the label. Every stage
ends with sentence punctuation (a post sentence without one gets a period). Explanations of fewer than
three sentences give no target (a stage would be empty or cut mid-sentence), nor do the few yes/no
explanations that open with the other answer (`contradicts_label`); `stage_texts` returns None and the SFT
run counts them.

Limits: the split is positional. The explanations were not written per appraisal stage, so what lands in
"secondary appraisal" (coping resources) or "reaction" is whatever the explanation says at that point; the
SFT teaches the format, a plausible register and, above all, the decision; aligning each stage's content
with its definition is left to RL. The explanations rationalise a known gold label, so they agree with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mental_r1.contract import ends_sentence, format_completion
from mental_r1.data import Example

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

Counter = Callable[[str], int]  # text -> number of tokens


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def thirds(units: list[str]) -> list[str]:
    """Three contiguous groups of `units` (≥ 3), sizes as equal as possible, earlier groups larger."""
    assert len(units) >= 3, "thirds needs at least three sentences"
    k, r = divmod(len(units), 3)
    parts, start = [], 0
    for i in range(3):
        size = k + (i < r)
        parts.append(" ".join(units[start:start + size]))
        start += size
    return parts


def fit_sentences(units: list[str], budget: int | None, count: Counter) -> list[str]:
    """`units` in order, after dropping the longest of the inner ones (never the first or the last) until
    their tokens fit `budget` or three remain."""
    kept = list(units)
    if budget is None:
        return kept
    while len(kept) > 3 and sum(map(count, kept)) > budget:
        inner = max(range(1, len(kept) - 1), key=lambda i: count(kept[i]))
        del kept[inner]
    return kept


def stimulus(post: str, fallback: str, budget: int | None, count: Counter) -> str:
    """The first of the post's first three sentences with ≥ 3 words that fits `budget` tokens, closed with a
    period if it has no sentence punctuation; else `fallback` (the explanation's first sentence)."""
    for s in sentences(post)[:3]:
        if len(s.split()) >= 3 and (budget is None or count(s) <= budget):
            return s if ends_sentence(s) else s.rstrip(",;:-") + "."
    return fallback


def contradicts_label(example: Example, units: list[str]) -> bool:
    """True when a yes/no task's explanation opens with the other answer ("Yes, …" for a gold "no"): a few
    IMHI explanations disagree with their own label, and a target built from one teaches a contradiction."""
    if set(example.task.label_names) != {"yes", "no"} or not units:
        return False
    first = re.match(r"(yes|no)\b", units[0].lower())
    return bool(first) and first.group(1) != example.label


def stage_texts(example: Example, count: Counter = lambda s: len(s.split()), max_reasoning_tokens: int | None = None,
                max_stimulus_tokens: int | None = None) -> dict[str, str] | None:
    """Stage name -> text for `example`, or None when its explanation has fewer than three sentences."""
    units = sentences(example.explanation or "")
    if len(units) < 3 or contradicts_label(example, units):
        return None
    units = fit_sentences(units, max_reasoning_tokens, count)
    primary, secondary, reaction = thirds(units)
    return {"stimulus": stimulus(example.text, units[0], max_stimulus_tokens, count),
            "primary_appraisal": primary, "secondary_appraisal": secondary, "reaction": reaction,
            "mental_state": example.task.label(example.label).text}


def sft_target(example: Example, count: Counter = lambda s: len(s.split()), max_reasoning_tokens: int | None = None,
               max_stimulus_tokens: int | None = None) -> str | None:
    """The completion after PREFILL (no EOS; the SFT trainer appends it), or None without a usable explanation."""
    texts = stage_texts(example, count, max_reasoning_tokens, max_stimulus_tokens)
    return None if texts is None else format_completion(texts, example.label, prefilled=True)
