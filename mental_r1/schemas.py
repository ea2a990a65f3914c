"""Pydantic models of the assessment API: what POST /assess accepts and returns.

The response is built from the shared contract (contract.py): stages come from `parse_completion`,
labels from the task registry, so training rewards and served responses cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    computed_field,
    field_validator,
    model_validator,
)

from mental_r1.contract import STAGES, ParsedCompletion
from mental_r1.tasks import DEFAULT_TASK, resolve_task_ids

MAX_TASKS_PER_REQUEST = 8


class AssessRequest(BaseModel):
    # strict: no coercion, so the accepted inputs are exactly what the OpenAPI schema says (e.g. `"seed": true`
    # or `"max_tokens": "64"` are 422s, not silently 1 and 64; found by schemathesis)
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(description="The post or statement to assess (never logged).")
    task: str | None = Field(None, description=(
        f"One task id (see GET /tasks), or a dataset id for all of its tasks; default {DEFAULT_TASK!r}."))
    tasks: list[str] | None = Field(None, min_length=1, max_length=MAX_TASKS_PER_REQUEST, description=(
        "Several task ids, assessed concurrently. A dataset id stands for all of its tasks ('Irf' = "
        f"both Irf tasks); repeated tasks are assessed once; at most {MAX_TASKS_PER_REQUEST} tasks in all."))
    locale: str | None = Field(None, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
                               description="BCP-47-like locale for crisis resources, e.g. 'en-US', 'en-GB'.")
    max_tokens: int = Field(384, ge=32, le=512, description="Reasoning token budget.")
    temperature: float = Field(0.0, ge=0.0, le=1.5, description="0 = greedy (reproducible).")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    timeout_s: float | None = Field(None, gt=0, le=600,
                                    description="Client deadline; the server's own limit applies when lower.")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or only whitespace")
        if (i := first_invalid_code_point(v)) is not None:  # JSON can carry them ("\ud800"); UTF-8 cannot
            raise ValueError(f"text holds invalid Unicode (a lone surrogate code point at character {i})")
        return v

    _task_ids: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _tasks_known(self) -> AssessRequest:
        if self.task is not None and self.tasks is not None:
            raise ValueError("give either 'task' or 'tasks', not both")
        names = self.tasks if self.tasks is not None else [self.task or DEFAULT_TASK]
        self._task_ids, unknown = resolve_task_ids(names)
        if unknown:  # named by a short, escaped prefix only: a task field may carry anything
            raise ValueError(f"unknown task {short_repr(unknown[0])}"
                             f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; "
                             "GET /tasks lists the known task ids and their dataset ids")
        if len(self._task_ids) > MAX_TASKS_PER_REQUEST:
            raise ValueError(f"'tasks' names {len(self._task_ids)} tasks once dataset ids are expanded; "
                             f"at most {MAX_TASKS_PER_REQUEST} per request")
        return self

    @property
    def task_ids(self) -> list[str]:
        """The tasks to assess: dataset ids expanded to their tasks, each task once, in the order named."""
        return list(self._task_ids)


def first_invalid_code_point(text: str) -> int | None:
    """Index of the first lone surrogate (U+D800-U+DFFF) in `text`, which has no UTF-8 encoding: the
    tokenizer cannot take it. None when the text is valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def short_repr(value: str, limit: int = 24) -> str:
    """An ASCII-escaped prefix of a client-supplied string, for error messages that must not echo input."""
    return ascii(value[:limit]) + ("..." if len(value) > limit else "")


class StageText(BaseModel):
    name: str
    title: str
    text: str | None = Field(description="The model's reasoning for this stage; null when missing.")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


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


class ErrorBody(BaseModel):
    type: str
    message: str
    details: list[dict] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class TaskInfo(BaseModel):
    id: str
    dataset: str
    question: str
    labels: dict[str, str] = Field(description="short label → IMHI label sentence")


def stage_texts(parsed: ParsedCompletion) -> list[StageText]:
    """The five stages in canonical order, text null where the model did not write the stage."""
    return [StageText(name=s.name, title=s.title, text=parsed.stages.get(s.name)) for s in STAGES]
