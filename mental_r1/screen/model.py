"""The model source of the crisis screen: the model's own probability of two risk labels, on every request.

Which labels (MODEL_SCREEN): t-sid "suicide or self-harm tendency" and Irf perceived burdensomeness "yes".
How (mental_r1.assessor.Assessor.risk_probabilities): for each of the two tasks, the shared prompt
(contract.build_prompt) is cut at the commit point of an *empty* reasoning (contract.commit_prefix(""): the
stimulus stage closed at once, then `<mental_state>`, where the model writes its label sentence). One
1-token request reads the log-probabilities of the tokens where the task's label sentences first diverge
(the one branching node of label_trie.branch_nodes: "This post shows| no / suicide / depression / PTSD",
"Yes / No|, the post …"), and `risk_probability` is their softmax (calibration.softmax, T = 1) at the risk
label. No reasoning is generated, and the prompts share the post with the caller's own tasks.
The calibration shipped with the model is not applied: it was fitted for whole label sentences after
reasoning; the threshold below is fitted on these raw probabilities instead.

Thresholds: a probability at or above its task's threshold raises a `concern` signal. They are fitted per
model on one part of the t-sid test half and reported on the other (training/screen_eval.py, which writes
them here with `--write-thresholds`), and kept in THRESHOLDS_FILE under the model's `name@release` (the
name and the version /readyz reports, without the content hash). A model without an entry has no model
source (the text source still runs); an entry marked provisional was not measured yet, and the service
says so in its log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mental_r1.calibration import softmax
from mental_r1.schemas import SafetySignal, TaskAssessment

log = logging.getLogger(__name__)

THRESHOLDS_FILE = Path(__file__).resolve().with_name("thresholds.json")
# task id → (its risk label, the signal category it raises)
MODEL_SCREEN: dict[str, tuple[str, str]] = {
    "t-sid": ("suicide or self-harm tendency", "suicide_or_self_harm"),
    "Irf:perceived_burdensomeness": ("yes", "perceived_burdensomeness"),
}


@dataclass(frozen=True)
class ModelScreen:
    """The thresholds of one model: task id → probability at or above which its risk label flags."""

    key: str
    thresholds: dict[str, float]
    provisional: bool = False

    @property
    def tasks(self) -> list[str]:
        return list(self.thresholds)


def model_key(name: str, version: str) -> str:
    """'Mental-R1-135M', '1.0.0+sha256:…' → 'Mental-R1-135M@1.0.0'; a checkpoint without a release keeps its
    content hash ('run@sha256:…')."""
    release = version.split("+", 1)[0]
    return f"{name}@{release}"


def load_model_screen(name: str, version: str, path: Path = THRESHOLDS_FILE) -> ModelScreen | None:
    key = model_key(name, version)
    if not Path(path).exists():
        raise FileNotFoundError(f"crisis-screen thresholds file {path} does not exist; unset "
                                "MENTAL_R1_SCREEN_THRESHOLDS_FILE to use the shipped one")
    entry = json.loads(Path(path).read_text()).get(key)
    if entry is None:
        log.warning("no crisis-screen thresholds for model %s in %s: the model source of the screen is off "
                    "(fit them with training/screen_eval.py --write-thresholds)", key, path)
        return None
    thresholds = {t: float(v) for t, v in entry["thresholds"].items() if v is not None}
    unknown = set(thresholds) - set(MODEL_SCREEN)
    if unknown or any(not 0.0 <= v <= 1.0 for v in thresholds.values()):
        raise ValueError(f"{path}: {key}: thresholds must be probabilities of the tasks {list(MODEL_SCREEN)}; "
                         f"got {entry['thresholds']}")
    screen = ModelScreen(key, thresholds, bool(entry.get("provisional")))
    if screen.provisional:
        log.warning("crisis-screen thresholds for %s are provisional (not measured yet): %s", key, thresholds)
    return screen


def write_model_screen(key: str, thresholds: dict[str, float | None], fitted: dict,
                       path: Path = THRESHOLDS_FILE) -> None:
    """Record a model's fitted thresholds (and how they were fitted) in the thresholds file."""
    table = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    table[key] = {"thresholds": thresholds, "provisional": False, "fitted": fitted}
    Path(path).write_text(json.dumps(table, indent=2) + "\n")


def risk_probability(task_id: str, logprobs: dict[str, float]) -> float:
    """P(risk label) from label → log-probability of its first distinguishing token (softmax, T = 1)."""
    risk, _ = MODEL_SCREEN[task_id]
    return softmax(logprobs)[risk]


def model_signals(probabilities: dict[str, float], screen: ModelScreen | None) -> list[SafetySignal]:
    """Concern signals of the tasks whose risk probability reaches the model's threshold."""
    if screen is None:
        return []
    return [SafetySignal(source="model", category=MODEL_SCREEN[t][1], level="concern", method="screen", task=t,
                         probability=round(p, 4))
            for t, p in probabilities.items() if t in screen.thresholds and p >= screen.thresholds[t]]


def assessment_signals(assessments: Iterable[TaskAssessment]) -> list[SafetySignal]:
    """Concern signals of the risk tasks the caller asked for whose answer is the risk label."""
    out = []
    for a in assessments:
        risk, category = MODEL_SCREEN.get(a.task, (None, None))
        if risk is not None and a.label == risk:
            out.append(SafetySignal(source="model", category=category, level="concern", method="assessment",
                                    task=a.task, probability=round(a.probabilities[risk], 4)))
    return out
