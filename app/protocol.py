"""The HTTP protocol of the service: what POST /assess accepts, the error envelope, GET /tasks.

What an assessment returns (AssessResponse, TaskAssessment, Safety) is the core's (mental_r1/schemas.py): the
batch command writes the same objects.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from mental_r1.assessor import GenerationOptions
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

    def generation_options(self) -> GenerationOptions:
        return GenerationOptions(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                                 seed=self.seed)


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
