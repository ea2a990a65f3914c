"""Safety content of every assessment: the disclaimer, the crisis screen's verdict and per-locale resources.

The screen itself is mental_r1/screen (a lexicon over the normalised text and the model's own risk-label
probabilities, with the level rule), so the service, batch runs and the measurement (training/screen_eval.py)
flag the same posts. This module adds the resources of the caller's locale (configuration: a JSON file, with an
international default) and the response's safety block; the service counts the flags (app/metrics.py).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from mental_r1.schemas import CrisisResource, Safety, TaskAssessment
from mental_r1.screen import screen, urgent
from mental_r1.screen.model import ModelScreen

log = logging.getLogger(__name__)

DISCLAIMER = (
    "This assessment is research and screening support produced by a language model. It is not a "
    "diagnosis or medical advice and may be wrong or biased. Decisions about a person's care belong to a "
    "qualified professional; please consult one. If someone may be in danger, contact local emergency "
    "services now."
)

DEFAULT_RESOURCES: dict[str, list[dict]] = {
    "default": [
        {"name": "Local emergency services", "contact": "your local emergency number (112 in the EU, 911 in "
         "North America)", "available": "24/7", "emergency": True},
        {"name": "Find a Helpline (international directory of crisis lines)", "contact": "https://findahelpline.com"},
    ],
    "US": [
        {"name": "988 Suicide & Crisis Lifeline", "contact": "call or text 988", "available": "24/7"},
        {"name": "Crisis Text Line", "contact": "text HOME to 741741", "available": "24/7"},
        {"name": "Emergency services", "contact": "911", "emergency": True},
    ],
    "GB": [{"name": "Samaritans", "contact": "call 116 123", "available": "24/7"},
           {"name": "Emergency services", "contact": "999", "emergency": True}],
    "IE": [{"name": "Samaritans", "contact": "call 116 123", "available": "24/7"},
           {"name": "Emergency services", "contact": "112 or 999", "emergency": True}],
}


class CrisisResources:
    """Locale → resources. 'en-GB', 'en_GB' and 'GB' all find 'GB'; unknown locales get 'default'. An entry
    with `"emergency": true` is the emergency number, listed first for an attempt in progress."""

    def __init__(self, table: dict[str, list[dict]] | None = None):
        table = table or DEFAULT_RESOURCES
        if "default" not in table:
            raise ValueError("crisis resources need a 'default' entry")
        self.table = {k.upper(): [CrisisResource(**r) for r in v] for k, v in table.items()}
        missing = sorted(k for k, v in self.table.items() if not any(r.emergency for r in v))
        if missing:
            log.warning("crisis resources of %s mark no emergency number (\"emergency\": true): for an attempt in "
                        "progress they cannot list it first", ", ".join(missing))

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


def safety_block(text: str, assessments: list[TaskAssessment], resources: CrisisResources, locale: str | None,
                 risk_probabilities: dict[str, float] | None = None, model_screen: ModelScreen | None = None) -> Safety:
    """The response's safety block. `crisis` (older than `level`) is true whenever the level is not none, so
    every response that carries resources says so, as before; `urgent` (an attempt in progress) puts the
    locale's emergency number first."""
    level, signals = screen(text, assessments, risk_probabilities, model_screen)
    flagged, now = level != "none", urgent(signals)
    found = resources.for_locale(locale) if flagged else []
    if now:  # the emergency number before the helplines (a stable sort keeps their order otherwise)
        found = sorted(found, key=lambda r: not r.emergency)
    return Safety(disclaimer=DISCLAIMER, crisis=flagged, level=level, urgent=now, signals=signals, resources=found)
