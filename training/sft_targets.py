"""Cold-start SFT targets: an IMHI reference answer laid out across the five appraisal stages.

An IMHI training answer is `<label sentence>. Reasoning: <explanation>` (GPT-3.5-written, 3–6 sentences).
The target completion (the text after the pre-filled `<think>\\n<stimulus>`, built with
`mental_r1.contract.format_completion`) is:

| stage | content |
|---|---|
| stimulus | the post's first sentence (the event as the poster states it, no interpretation) |
| primary_appraisal | explanation sentences, first third |
| secondary_appraisal | explanation sentences, second third |
| reaction | explanation sentences, last third |
| mental_state | the task's IMHI label sentence, e.g. "Yes, the poster suffers from depression." |
| answer | the short label, exactly as listed in the prompt's options |

The explanation is split into three contiguous groups of whole sentences (sizes as equal as possible,
earlier groups larger); with fewer than three sentences, its words are split into three parts instead.
Every stage is cut to `max_stage_words` words when given (shorter targets, cheaper RL rollouts).

Limits: the split is positional. The explanations were not written per appraisal stage, so what lands in
"secondary appraisal" (coping resources) or "reaction" is whatever the explanation says at that point; the
SFT teaches the *format* and a plausible register, and leaves aligning each stage's content with its
definition to RL. The explanations rationalise a known gold label (written with the label in view), so
they can state the conclusion early. Examples without an explanation (the paper's CSV layout) give no
target and are skipped.
"""

from __future__ import annotations

import re

from mental_r1.contract import format_completion
from mental_r1.data import Example

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def three_parts(text: str) -> list[str]:
    """Contiguous thirds of `text`: by sentences when there are ≥ 3, else by words (parts may be empty only
    if the text has fewer than three words)."""
    units, joiner = sentences(text), " "
    if len(units) < 3:
        units = text.split()
    k, r = divmod(len(units), 3)
    sizes = [k + (i < r) for i in range(3)]
    parts, start = [], 0
    for size in sizes:
        parts.append(joiner.join(units[start:start + size]))
        start += size
    return parts


def _cut(text: str, max_words: int | None) -> str:
    words = text.split()
    return text.strip() if max_words is None or len(words) <= max_words else " ".join(words[:max_words])


def stage_texts(example: Example, max_stage_words: int | None = None) -> dict[str, str] | None:
    """Stage name -> text for `example`, or None when it has no usable explanation."""
    if not example.explanation or len(example.explanation.split()) < 3:
        return None
    post_sentences = sentences(example.text) or [example.text]
    primary, secondary, reaction = three_parts(example.explanation)
    texts = {"stimulus": post_sentences[0], "primary_appraisal": primary, "secondary_appraisal": secondary,
             "reaction": reaction, "mental_state": example.task.label(example.label).text}
    return {name: _cut(t, max_stage_words) for name, t in texts.items()}


def sft_target(example: Example, max_stage_words: int | None = None) -> str | None:
    """The completion after PREFILL (no EOS; the SFT trainer appends it), or None without an explanation."""
    texts = stage_texts(example, max_stage_words)
    return None if texts is None else format_completion(texts, example.label, prefilled=True)
