"""Safety content of every response: the disclaimer, and crisis signals with resources.

Crisis detection runs on two sources so that a missed model label cannot hide an explicit statement:
- the text itself: conservative patterns for explicit statements (categories after "Between Help and
  Harm", JMIR Mental Health 2026: suicidal_ideation, self_harm, ...). Patterns catch explicit phrasing
  only; indirect signals are exactly where models and keyword lists both fail, hence the disclaimer.
- the assessment: a risk label (e.g. t-sid "suicide or self-harm tendency", Irf "perceived
  burdensomeness: yes") or a mental_state stage that names suicide or self-harm.
Resources come per locale from configuration (a JSON file), with an international default.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mental_r1.schemas import CrisisResource, Safety, TaskAssessment

DISCLAIMER = (
    "This assessment is research and screening support produced by a language model. It is not a "
    "diagnosis or medical advice and may be wrong or biased. Decisions about a person's care belong to a "
    "qualified professional; please consult one. If someone may be in danger, contact local emergency "
    "services now."
)

_PATTERNS: dict[str, list[str]] = {
    "suicidal_ideation": [
        r"\b(kill(ing)?|hang(ing)?|shoot(ing)?) my ?self\b", r"\bsuicid(e|al)\b", r"\bend(ing)? (it all|my life)\b",
        r"\btake my (own )?life\b", r"\b(want|wanna|going|plan(ning)?) to die\b", r"\bdon'?t want to (live|be alive)\b",
        r"\bbetter off (dead|without me)\b", r"\bno reason to live\b", r"\bnot wake up\b",
    ],
    "self_harm": [
        r"\b(cut|cutting|burn|burning|hurt|hurting|harm|harming) my ?self\b", r"\bself[- ]?harm", r"\boverdos(e|ing)\b",
    ],
    "violent_thoughts": [r"\b(kill|hurt|shoot|stab) (him|her|them|someone|everyone|people)\b"],
}
_COMPILED = {cat: [re.compile(p, re.IGNORECASE) for p in ps] for cat, ps in _PATTERNS.items()}
_RISK_LABELS = {("t-sid", "suicide or self-harm tendency"): "suicidal_ideation",
                ("Irf:perceived_burdensomeness", "yes"): "perceived_burdensomeness"}

DEFAULT_RESOURCES: dict[str, list[dict]] = {
    "default": [
        {"name": "Local emergency services", "contact": "your local emergency number (112 in the EU, 911 in "
         "North America)", "available": "24/7"},
        {"name": "Find a Helpline (international directory of crisis lines)", "contact": "https://findahelpline.com"},
    ],
    "US": [
        {"name": "988 Suicide & Crisis Lifeline", "contact": "call or text 988", "available": "24/7"},
        {"name": "Crisis Text Line", "contact": "text HOME to 741741", "available": "24/7"},
        {"name": "Emergency services", "contact": "911"},
    ],
    "GB": [{"name": "Samaritans", "contact": "call 116 123", "available": "24/7"},
           {"name": "Emergency services", "contact": "999"}],
    "IE": [{"name": "Samaritans", "contact": "call 116 123", "available": "24/7"},
           {"name": "Emergency services", "contact": "112 or 999"}],
}


def text_signals(text: str) -> set[str]:
    return {cat for cat, pats in _COMPILED.items() if any(p.search(text) for p in pats)}


def assessment_signals(a: TaskAssessment) -> set[str]:
    out = set()
    if cat := _RISK_LABELS.get((a.task, a.label)):
        out.add(cat)
    mental_state = next((s.text for s in a.stages if s.name == "mental_state"), None) or ""
    if re.search(r"\b(suicid\w*|self[- ]?harm)", mental_state, re.IGNORECASE):
        out.add("suicidal_ideation")
    return out


class CrisisResources:
    """Locale → resources. 'en-GB', 'en_GB' and 'GB' all find 'GB'; unknown locales get 'default'."""

    def __init__(self, table: dict[str, list[dict]] | None = None):
        table = table or DEFAULT_RESOURCES
        if "default" not in table:
            raise ValueError("crisis resources need a 'default' entry")
        self.table = {k.upper(): [CrisisResource(**r) for r in v] for k, v in table.items()}

    @classmethod
    def from_file(cls, path: Path | None) -> CrisisResources:
        return cls(json.loads(Path(path).read_text()) if path else None)

    def for_locale(self, locale: str | None) -> list[CrisisResource]:
        if locale:
            parts = re.split(r"[-_]", locale.upper())
            for key in (locale.upper().replace("_", "-"), *reversed(parts)):
                if key in self.table:
                    return self.table[key]
        return self.table["DEFAULT"]


def safety_block(text: str, assessments: list[TaskAssessment], resources: CrisisResources,
                 locale: str | None) -> Safety:
    signals = text_signals(text)
    for a in assessments:
        signals |= assessment_signals(a)
    crisis = bool(signals & {"suicidal_ideation", "self_harm", "perceived_burdensomeness"})
    return Safety(disclaimer=DISCLAIMER, crisis=crisis, signals=sorted(signals),
                  resources=resources.for_locale(locale) if crisis else [])
