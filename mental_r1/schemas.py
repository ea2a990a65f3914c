"""Pydantic models of an assessment: what the core returns (TaskAssessment, Safety, AssessResponse), the object
of every POST /assess response and every line of `mental-r1 assess` output. The HTTP-only models (the request,
the error envelope, GET /tasks) are app/protocol.py.

The assessment is built from the shared contract (contract.py): stages come from `parse_completion`,
labels from the task registry, so training rewards and served responses cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from mental_r1.contract import STAGES, ParsedCompletion, shown_stage


class StageText(BaseModel):
    name: str
    title: str
    text: str | None = Field(description="The model's reasoning for this stage; null when missing.")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = Field(0, description="Tokens generated, over all `reasonings`.")
    reasonings: int = Field(1, description=(
        "Reasonings generated for this task: 1, or 1 + the sampled ones of the task's decision rule "
        "(mental_r1/decision.py); each is at most the request's `max_tokens` long."))


class TaskAssessment(BaseModel):
    task: str
    question: str
    label: str = Field(description="Most probable label of the task's label set.")
    label_text: str
    confidence: float = Field(ge=0.0, le=1.0, description="Probability of `label` from the model's tokens.")
    probabilities: dict[str, float] = Field(description="Label → calibrated probability over the whole label set.")
    label_set: list[str] = Field(default_factory=list, description=(
        "The conformal label set, in descending probability: every label whose calibrated probability clears the "
        "task's threshold, fitted on validation data so that the set holds the true label for 90 % of posts (the "
        "default coverage of training/fit_calibration.py); "
        "`label` always comes first. Just [`label`] when the model has no threshold for the task (default)."))
    label_logprobs: dict[str, float] = Field(description=(
        "Label → the model's log-probability of the label sentence opening its mental_state stage, under decoding "
        "constrained to the task's label sentences, normalised over the label set (uncalibrated; `probabilities` is "
        "their softmax with the model's calibration). By default given the shown reasoning; a model whose "
        "calibration names a decision rule for the task mixes the label scored with no reasoning and after several "
        "reasonings (mental_r1/decision.py)."))
    stages: list[StageText]
    reasoning_agrees: bool = Field(default=True, description=(
        "Whether the shown reasoning, on its own, leads the model to `label` (its commit point prefers it). Always "
        "true for the default rule; under a decision rule the reasoning shown is the candidate that best supports "
        "the label, and this is false when none of the candidates does."))
    format_valid: bool
    format_issues: list[str]
    usage: Usage

    @model_validator(mode="after")
    def _label_set_starts_with_label(self) -> TaskAssessment:
        if not self.label_set:
            self.label_set = [self.label]
        if self.label_set[0] != self.label or len(set(self.label_set)) != len(self.label_set):
            raise ValueError(f"label_set must start with the label {self.label!r} and hold each label once, "
                             f"got {self.label_set}")
        return self

    @computed_field(description=(
        "When `label_set` holds more than one label, a short sentence saying so, e.g. \"uncertain between yes and "
        "no\"; null when the set is the label alone."))
    @property
    def uncertain(self) -> str | None:
        return uncertainty_note(self.label_set)


def uncertainty_note(labels: list[str]) -> str | None:
    """The sentence for a label set of two or more labels: "uncertain between a and b" (or "a, b and c")."""
    if len(labels) < 2:
        return None
    return "uncertain between " + ", ".join(labels[:-1]) + " and " + labels[-1]


class CrisisResource(BaseModel):
    name: str
    contact: str
    available: str | None = None
    emergency: bool = Field(False, description=(
        "The emergency number (ambulance, police): listed first when the screen finds an attempt in progress."))


class SafetySignal(BaseModel):
    """One reason the crisis screen raised a flag (mental_r1/screen). Never the text that raised it."""

    source: Literal["text", "model"] = Field(description=(
        "text: the crisis lexicon matched the post; model: the model's own probability of a risk label"))
    category: str = Field(description=(
        "text: suicidal_ideation, death_wish, suicide_method, self_harm, farewell, perceived_burdensomeness, "
        "hopelessness, violent_thoughts, attempt_in_progress, means_access, preparations, intent_plan, death_as_gift "
        "(docs/crisis-taxonomy.md); model: suicide_or_self_harm (t-sid), perceived_burdensomeness (Irf)"))
    level: Literal["concern", "crisis"]
    subject: Literal["self", "other"] | None = Field(None, description=(
        "text: whose risk the phrase states: the poster's (self) or someone else's, reported or told (other)"))
    negated: bool | None = Field(None, description=(
        "text: the phrase was negated ('I would never …') or vents about an irritant ('this traffic is making me "
        "want to …')"))
    past: bool | None = Field(None, description=(
        "text: the sentence sets the phrase years back ('years ago', 'used to', 'when I was 15'): a history"))
    method: Literal["screen", "assessment"] | None = Field(None, description=(
        "model: screen = label scoring of the risk task without reasoning, on every request; assessment = "
        "the answer of a risk task the caller asked for"))
    task: str | None = Field(None, description="model: the task whose risk label raised the flag")
    probability: float | None = Field(None, ge=0.0, le=1.0, description="model: the risk label's probability")


class Safety(BaseModel):
    disclaimer: str
    crisis: bool = Field(description=(
        "True when `level` is not 'none', i.e. whenever resources are attached (kept from before `level`)."))
    level: Literal["none", "concern", "crisis"] = Field(description=(
        "crisis: the post states, in the first person, now and not negated, a wish, intent or plan to die, a "
        "method or the means at hand, preparations, an attempt, self-harm, a goodbye or its death as a gift to "
        "others (docs/crisis-taxonomy.md); concern: any other signal (warning signs such as hopelessness or being a "
        "burden, negated, past or someone else's statements, the model's risk probability); none: no signal."))
    urgent: bool = Field(False, description=(
        "True when the text describes an attempt in progress (pills already taken, a rope up, an engine running "
        "in a closed garage), the poster's or someone else's: `resources` begin with the emergency number and "
        "should be shown before anything else."))
    signals: list[SafetySignal] = Field(description="Why the screen flagged the request, one entry per reason.")
    resources: list[CrisisResource] = Field(description=(
        "Crisis resources for the locale when level is not none; the emergency number first when `urgent`."))


class ModelInfo(BaseModel):
    name: str
    version: str


class AssessResponse(BaseModel):
    assessments: list[TaskAssessment]
    safety: Safety
    model: ModelInfo
    usage: Usage
    latency_ms: float


def stage_texts(parsed: ParsedCompletion) -> list[StageText]:
    """The five stages in canonical order, text null where the model did not write the stage, each ending with a
    sentence end (`shown_stage`)."""
    return [StageText(name=s.name, title=s.title, text=shown_stage(t) if (t := parsed.stages.get(s.name)) else t)
            for s in STAGES]
