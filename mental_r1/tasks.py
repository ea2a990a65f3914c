"""The task registry: the eight IMHI tasks, their questions and label sets.

A *task* is one question with one label set, e.g. `DR` ("Does the poster suffer from depression?") or
`MultiWD:social`. Datasets with several questions (Irf, MultiWD) hold several tasks; every IMHI row is
routed to its task by the question at the end of its query. Labels have a short form (what the model
writes in <answer>, what the API returns as `label`) and the IMHI sentence (`label_text`).

A user's own dataset in the paper's `text,label,mental_prompt` format becomes a task through
`custom_task` (see data.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    short: str
    text: str


@dataclass(frozen=True)
class Task:
    id: str
    dataset: str
    question: str
    labels: tuple[Label, ...]
    description: str = ""

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(lab.short for lab in self.labels)

    def label(self, short: str) -> Label:
        for lab in self.labels:
            if lab.short == short:
                return lab
        raise KeyError(f"task {self.id!r} has no label {short!r}; labels: {', '.join(self.label_names)}")

    def gold_label(self, answer: str) -> str:
        """Map an IMHI reference answer (`<label sentence>. Reasoning: …`) to a short label."""
        head = _norm(answer.split("Reasoning:")[0])
        hits = [lab.short for lab in self.labels if _norm(lab.text) == head or _norm(lab.short) == head]
        if len(hits) != 1:
            raise KeyError(f"answer {head[:80]!r} matches {len(hits)} labels of task {self.id!r}")
        return hits[0]


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip().lower()


def _yes_no(yes: str, no: str) -> tuple[Label, ...]:
    return (Label("yes", yes), Label("no", no))


def _poster(condition: str) -> tuple[Label, ...]:
    return _yes_no(f"Yes, the poster suffers from {condition}.",
                   f"No, the poster does not suffer from {condition}.")


_SAD_CAUSES = ("school", "financial problem", "family issues", "social relationships", "work",
               "health issues", "emotion turmoil", "everyday decision making")
_CAMS_CAUSES = ("alienation", "relationship", "jobs and career", "medication", "bias or abuse")
_TSID = (("no mental disorders", "This post shows no mental disorders."),
         ("suicide or self-harm tendency", "This post shows suicide or self-harm tendency."),
         ("depression", "This post shows depression."),
         ("PTSD", "This post shows PTSD."))
_IRF_LABELS = _yes_no("Yes, the post shows this risk.", "No, the post does not show this risk.")
_MWD_LABELS = _yes_no("Yes, this wellness dimension exists in the post.",
                      "No, this wellness dimension does not exist in the post.")


def _build() -> dict[str, Task]:
    tasks = [
        Task("DR", "DR", "Does the poster suffer from depression?", _poster("depression"), "depression"),
        Task("dreaddit", "dreaddit", "Does the poster suffer from stress?", _poster("stress"), "stress"),
        Task("loneliness", "loneliness", "Does the poster suffer from loneliness?", _poster("loneliness"),
             "loneliness"),
        Task("SAD", "SAD", "What is the stress cause of this post?",
             tuple(Label(c, f"This post shows the stress cause related to {c}.") for c in _SAD_CAUSES)
             + (Label("other stress causes", "This post shows other stress causes."),), "stress cause"),
        Task("CAMS", "CAMS", "What cause of depression does this post show?",
             tuple(Label(c, f"This post shows causes of depression related to {c}.") for c in _CAMS_CAUSES)
             + (Label("no causes", "This post shows no causes of depression."),), "depression cause"),
        Task("t-sid", "t-sid", "What mental disorder does this post show?",
             tuple(Label(s, t) for s, t in _TSID), "mental disorder incl. suicide/self-harm risk"),
    ]
    for risk in ("thwarted belongingness", "perceived burdensomeness"):
        tasks.append(Task(f"Irf:{risk.replace(' ', '_')}", "Irf", f"Does the post show risk of {risk}?",
                          _IRF_LABELS, f"interpersonal risk: {risk}"))
    for dim in ("spiritual", "physical", "intellectual", "social", "vocational", "emotional"):
        tasks.append(Task(f"MultiWD:{dim}", "MultiWD", f"Does the {dim} wellness dimension exist in the post?",
                          _MWD_LABELS, f"wellness dimension: {dim}"))
    return {t.id: t for t in tasks}


TASKS: dict[str, Task] = _build()
IMHI_DATASETS: tuple[str, ...] = ("DR", "dreaddit", "SAD", "MultiWD", "Irf", "CAMS", "loneliness", "t-sid")
DEFAULT_TASK = "DR"


def get_task(task_id: str) -> Task:
    try:
        return TASKS[task_id]
    except KeyError:
        raise KeyError(f"unknown task {task_id!r}; known tasks: {', '.join(TASKS)}") from None


def tasks_of_dataset(dataset: str) -> list[Task]:
    return [t for t in TASKS.values() if t.dataset == dataset]


def resolve_task_ids(names: list[str]) -> tuple[list[str], list[str]]:
    """(task ids, unknown names) for what a caller wrote: a task id stands for itself, a dataset id for all
    of its tasks (`Irf` → both Irf tasks); duplicates after expansion are dropped, keeping the first."""
    ids: list[str] = []
    unknown: list[str] = []
    for name in names:
        expanded = [name] if name in TASKS else [t.id for t in tasks_of_dataset(name)]
        if not expanded:
            unknown.append(name)
        ids += [t for t in expanded if t not in ids]
    return ids, unknown


def task_for_question(dataset: str, question: str) -> Task:
    """The task of `dataset` whose question is `question` (whitespace/case-insensitive)."""
    q = _norm(question)
    for t in tasks_of_dataset(dataset):
        if _norm(t.question) == q:
            return t
    raise KeyError(f"dataset {dataset!r} has no task with question {question!r}")
