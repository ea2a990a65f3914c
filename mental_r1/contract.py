"""The assessment contract shared by training (rewards, SFT targets) and serving (responses).

A completion follows the paper's format, five appraisal stages inside <think> and a label in <answer>:

    <think>
    <stimulus>…</stimulus>
    <primary_appraisal>…</primary_appraisal>
    <secondary_appraisal>…</secondary_appraisal>
    <reaction>…</reaction>
    <mental_state>…</mental_state>
    </think>
    <answer>LABEL</answer>

The assistant turn is pre-filled with PREFILL (`<think>\\n<stimulus>`), so a generated completion starts
inside the stimulus stage. `parse_completion` takes the generated text (by default it re-attaches the
prefill) and reports every way it departs from the format; it never raises, because a truncated or
malformed generation is a normal event, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    definition: str


STAGES: tuple[Stage, ...] = (
    Stage("stimulus", "Stimulus", "the event described"),
    Stage("primary_appraisal", "Primary appraisal", "its relevance and impact"),
    Stage("secondary_appraisal", "Secondary appraisal", "coping resources"),
    Stage("reaction", "Reaction", "emotions and behaviour"),
    Stage("mental_state", "Mental state", "the chosen option's sentence"),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
PREFILL = "<think>\n<stimulus>"

# Compact on purpose (~60 tokens; v1's was ~180 of a ~430-token training row): every token here is paid on
# every training row and every served request. The model learns the format from its training targets, so
# the prompt names the stages in order and says what goes where, nothing more.
SYSTEM_PROMPT = (
    "Assess the post for mental-health research. Reason in five tagged stages, "
    + ", ".join(f"<{s.name}> {s.definition}" for s in STAGES)
    + ", inside <think></think>, then give one option, exactly as written, in <answer></answer>."
)


_CONTROL_RE = re.compile(r"<\|([^|<>]{0,40})\|>")


def neutralize_control_tokens(text: str, reserved: Sequence[str] = ()) -> str:
    """Break chat-control markers such as `<|im_start|>` (`<|x|>` → `< |x| >`) and every string in `reserved`
    (the tokenizer's added tokens, e.g. SmolLM2's `<file_sep>` → `< file_sep>`) in user text, so that a post
    cannot put a single special token into the prompt (a forged system or assistant turn, an end of text)
    once the prompt is tokenized with special-token parsing on."""
    text = _CONTROL_RE.sub(r"< |\1| >", text)
    pattern = _reserved_pattern(tuple(sorted(set(reserved))))
    for _ in range(8):  # a break inserts one space; repeat in case that formed another token (never seen)
        if pattern is None or not pattern.search(text):
            break
        text = pattern.sub(lambda m: m[0][0] + " " + m[0][1:], text)
    return text


@lru_cache(maxsize=8)
def _reserved_pattern(tokens: tuple[str, ...]) -> re.Pattern | None:
    breakable = sorted((t for t in tokens if len(t.strip()) > 1), key=len, reverse=True)  # longest first
    return re.compile("|".join(map(re.escape, breakable))) if breakable else None


def added_tokens(tokenizer) -> tuple[str, ...]:
    """Every added token of the tokenizer (special or not): each one is matched as a single token wherever it
    appears in the text, so each must be broken in user text."""
    return tuple(sorted(t.content for t in tokenizer.added_tokens_decoder.values()))


def user_message(text: str, question: str, options: Sequence[str], reserved: Sequence[str] = ()) -> str:
    """The user turn: the post (control markers and `reserved` tokens neutralized), the task's question and
    the label options."""
    post = neutralize_control_tokens(text.strip(), reserved)
    return f'Post: "{post}"\nQuestion: {question}\nOptions: {", ".join(options)}'


def build_messages(text: str, question: str, options: Sequence[str],
                   reserved: Sequence[str] = ()) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(text, question, options, reserved)},
    ]


def build_prompt(tokenizer, text: str, question: str, options: Sequence[str]) -> str:
    """Chat-templated prompt string ending in the pre-filled assistant turn (`…<think>\\n<stimulus>`)."""
    rendered = tokenizer.apply_chat_template(
        build_messages(text, question, options, added_tokens(tokenizer)), tokenize=False, add_generation_prompt=True
    )
    return rendered + PREFILL


def format_completion(stage_texts: dict[str, str], answer: str, *, prefilled: bool = True) -> str:
    """Render stage texts and an answer in the contract's format (SFT targets, tests).

    With `prefilled=True` the leading PREFILL is omitted, as it belongs to the prompt.
    """
    body = "\n".join(f"<{n}>{stage_texts[n].strip()}</{n}>" for n in STAGE_NAMES)
    full = f"<think>\n{body}\n</think>\n<answer>{answer}</answer>"
    assert full.startswith(PREFILL)
    return full[len(PREFILL):] if prefilled else full


# ---------------------------------------------------------------------------------------------- parsing

_TAG_RE = re.compile(r"<(/?)(think|answer|" + "|".join(STAGE_NAMES) + r")>")


@dataclass(frozen=True)
class FormatIssue:
    kind: str  # missing_think | missing_think_close | missing_stage | duplicate_stage | out_of_order |
    #            empty_stage | unclosed_stage | missing_answer | empty_answer | unclosed_answer |
    #            leading_text | trailing_text
    stage: str | None = None

    def describe(self) -> str:
        return f"{self.kind}: {self.stage}" if self.stage else self.kind


@dataclass
class ParsedCompletion:
    stages: dict[str, str] = field(default_factory=dict)  # first occurrence of each stage, stripped
    stage_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # char spans in `text`
    answer: str | None = None
    text: str = ""  # the parsed text (prefill included when it was re-attached)
    issues: list[FormatIssue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.issues


def parse_completion(completion: str, *, prefilled: bool = True) -> ParsedCompletion:
    """Parse a completion into stages + answer, collecting every format issue.

    `prefilled=True` means `completion` is what the model generated after the pre-filled PREFILL.
    Content of a stage whose closing tag is missing (truncated output) runs to the next tag or the
    end of the text and is reported as `unclosed_stage`.
    """
    text = PREFILL + completion if prefilled else completion
    out = ParsedCompletion(text=text)
    issues = out.issues
    tags = list(_TAG_RE.finditer(text))

    opens = [m for m in tags if m.group(2) == "think" and not m.group(1)]
    closes = [m for m in tags if m.group(2) == "think" and m.group(1)]
    if not opens:
        issues.append(FormatIssue("missing_think"))
    elif text[: opens[0].start()].strip():
        issues.append(FormatIssue("leading_text"))
    if not closes:
        issues.append(FormatIssue("missing_think_close"))

    seen_order: list[str] = []
    for name in STAGE_NAMES:
        starts = [i for i, m in enumerate(tags) if m.group(2) == name and not m.group(1)]
        if not starts:
            issues.append(FormatIssue("missing_stage", name))
            continue
        if len(starts) > 1:
            issues.append(FormatIssue("duplicate_stage", name))
        i = starts[0]
        begin = tags[i].end()
        nxt = tags[i + 1] if i + 1 < len(tags) else None
        if nxt is not None and nxt.group(2) == name and nxt.group(1):
            end = nxt.start()
        else:
            end = nxt.start() if nxt is not None else len(text)
            issues.append(FormatIssue("unclosed_stage", name))
        out.stage_spans[name] = (begin, end)
        out.stages[name] = text[begin:end].strip()
        if not out.stages[name]:
            issues.append(FormatIssue("empty_stage", name))
        seen_order.append(name)
    firsts = sorted(out.stage_spans, key=lambda n: out.stage_spans[n][0])
    if firsts != seen_order:
        issues.append(FormatIssue("out_of_order"))

    a_open = [m for m in tags if m.group(2) == "answer" and not m.group(1)]
    a_close = [m for m in tags if m.group(2) == "answer" and m.group(1)]
    if not a_open:
        issues.append(FormatIssue("missing_answer"))
        return out
    if closes and a_open[0].start() < closes[0].start():
        issues.append(FormatIssue("out_of_order"))
    close_after = [m for m in a_close if m.start() >= a_open[0].end()]
    if close_after:
        out.answer = text[a_open[0].end(): close_after[0].start()].strip()
        if text[close_after[0].end():].strip():
            issues.append(FormatIssue("trailing_text"))
    else:
        out.answer = text[a_open[0].end():].strip()
        issues.append(FormatIssue("unclosed_answer"))
    if len(a_open) > 1:
        issues.append(FormatIssue("duplicate_stage", "answer"))
    if not out.answer:
        issues.append(FormatIssue("empty_answer"))
    return out


COMMIT_TAG = "<mental_state>"


def commit_prefix(completion: str) -> str:
    """The completion cut right after `<mental_state>`: the point where the model commits to a label.

    The mental_state stage opens with the task's label sentence (training/sft_targets.py), so the
    probability of each label sentence here, given the four stages before it, is the model's decision;
    scoring after `<answer>` instead would measure how faithfully it copies the sentence it already wrote.
    A completion that never opened mental_state (truncated, or skipped to `</think>`/`<answer>`) is cut
    before those tags, its open stage closed, and `<mental_state>` appended, so every completion can be scored.
    A stage cut off by the token budget ends at its last sentence end (`_whole_sentences`), so no stage is
    shown, or scored from, mid-sentence; one without any sentence end is kept as it is.
    """
    i = completion.find(COMMIT_TAG)
    if i >= 0:
        return completion[: i + len(COMMIT_TAG)]
    body = completion
    for tag in ("</think>", "<answer>"):
        if tag in body:
            body = body[: body.index(tag)]
    body = body.rstrip()
    parsed = parse_completion(body)
    unclosed = [x.stage for x in parsed.issues if x.kind == "unclosed_stage"]
    last = max(parsed.stage_spans, key=lambda n: parsed.stage_spans[n][0], default=None)
    if last in unclosed and parsed.stage_spans[last][1] == len(parsed.text):
        start = parsed.stage_spans[last][0] - len(PREFILL)  # parsed.text has the prefill re-attached
        body = body[:start] + _whole_sentences(body[start:]) + f"</{last}>"
    return body + "\n" + COMMIT_TAG


_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]*$")


def ends_sentence(text: str) -> bool:
    """True when `text` ends with sentence punctuation (optionally followed by closing quotes/brackets)."""
    return bool(_ENDS_SENTENCE.search(text.strip()))


def shown_stage(text: str) -> str:
    """A stage as the service shows it: ending with a sentence end. The model closed the stage without one (a
    Reddit-style line copied into the stimulus, a last clause without its full stop): its trailing clause
    punctuation is dropped and a full stop added. A stage cut by the token budget already ends at its last
    sentence end (`commit_prefix`)."""
    text = text.strip()
    if not text or ends_sentence(text):
        return text
    core = text.rstrip(",;:-–— \t\n")
    return core + "." if core else text


_LAST_SENTENCE_END = re.compile(r"^.*[.!?][\"')\]]*(?=\s|$)", re.DOTALL)


def _whole_sentences(text: str) -> str:
    """`text` up to its last sentence end (., ! or ?, with closing quotes or brackets), or all of it if none."""
    m = _LAST_SENTENCE_END.match(text)
    return m.group(0) if m else text


def label_continuation(label_sentence: str) -> str:
    """What is scored at the commit point for a label (and what SFT trains there): its sentence closing the
    mental_state stage."""
    return label_sentence + "</mental_state>"


def committed_completion(prefix: str, label: str, label_sentence: str) -> str:
    """`commit_prefix(...)` completed with the chosen label: its sentence as the mental_state stage, then the
    answer. The service writes this tail instead of sampling it (it holds nothing but the label)."""
    assert prefix.endswith(COMMIT_TAG), "prefix must come from commit_prefix"
    return f"{prefix}{label_sentence}</mental_state>\n</think>\n<answer>{label}</answer>"


def match_label(answer: str | None, labels: Sequence[str]) -> str | None:
    """The label the answer names: it starts with the label (case-insensitive), followed by a non-word
    character or the end (the paper's accuracy rule). The longest matching label wins."""
    if not answer:
        return None
    a = answer.strip().lower()
    best = None
    for label in labels:
        lab = label.lower()
        if re.match(re.escape(lab) + r"(?!\w)", a) and (best is None or len(lab) > len(best)):
            best = label
    return best
