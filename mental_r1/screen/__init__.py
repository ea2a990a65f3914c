"""The crisis screen: every request, two independent sources, one level.

    from mental_r1.screen import screen
    level, signals = screen(text, assessments, risk_probabilities, model_screen)

Sources (each signal says which raised it, never the text):
- text (text.py, lexicon.py, normalize.py): a reviewed lexicon of explicit and indirect phrasing, matched
  after Unicode normalisation, with negation and whose risk a phrase states;
- model (model.py): the model's own probability of the t-sid "suicide or self-harm tendency" and the Irf
  perceived-burdensomeness labels by label scoring without reasoning, against thresholds fitted on t-sid;
  and the answers of those tasks when the caller asked for them.

Level rule: the highest level among the signals, `none` without any.
- crisis: a crisis phrase (suicidal ideation, death wish, method, self-harm, farewell, attempt in progress,
  means, preparations, intent or plan, death as a gift; or a weaker phrase of the last six with a cue or
  another signal beside it, text.py) about the poster, now and not negated;
- concern: everything else that flags: warning signs (being a burden, hopelessness and entrapment, violent
  thoughts, a lone farewell or decision), negated, past or someone else's crisis phrases, and every model
  signal (the model alone is weak evidence: it recalled few self-harm posts on its own, docs/evaluation.md).
Both levels attach the locale's crisis resources; the service, a batch run and the measurement
(training/screen_eval.py) all call this function, so they flag the same posts. `urgent`: the text describes
an attempt in progress (the poster's, or someone else's that the poster is witnessing): the emergency number
goes first. docs/crisis-taxonomy.md: every category, its source and its level.
"""

from __future__ import annotations

from collections.abc import Iterable

from mental_r1.schemas import SafetySignal, TaskAssessment
from mental_r1.screen.model import ModelScreen, assessment_signals, model_signals
from mental_r1.screen.text import text_hits

LEVEL_ORDER = ("none", "concern", "crisis")


def text_signals(text: str) -> list[SafetySignal]:
    return [SafetySignal(source="text", category=h.category, level=h.level, subject=h.subject, negated=h.negated,
                         past=h.past) for h in text_hits(text)]


def urgent(signals: Iterable[SafetySignal]) -> bool:
    """An attempt in progress, not denied and not years ago, whoever's it is: call the emergency number first."""
    return any(s.source == "text" and s.category == "attempt_in_progress" and not s.negated and not s.past
               for s in signals)


def overall_level(signals: Iterable[SafetySignal]) -> str:
    return max((s.level for s in signals), key=LEVEL_ORDER.index, default="none")


def screen(text: str, assessments: Iterable[TaskAssessment] = (), risk_probabilities: dict[str, float] | None = None,
           model_screen: ModelScreen | None = None) -> tuple[str, list[SafetySignal]]:
    """The level and the signals for one post: text signals, model-screen signals (`risk_probabilities`
    from Assessor.risk_probabilities against `model_screen`'s thresholds) and the risk tasks' answers."""
    signals = (text_signals(text) + model_signals(risk_probabilities or {}, model_screen)
               + assessment_signals(assessments))
    return overall_level(signals), signals
