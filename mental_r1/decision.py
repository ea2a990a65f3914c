"""How an assessment's label distribution is formed from the model's scores: the decision rule.

The model can be asked for a task's label in two ways, both scored by decoding constrained to the label
sentences at the commit point (Assessor.label_logprobs):
- **after reasoning**: the model writes its appraisal stages, then the label is scored where the mental_state
  stage opens. Greedy reasoning leaves the model nearly certain of the label its own reasoning led to, so
  this distribution is close to one-hot whatever the evidence (issue 18: confidence AUROC 0.56-0.60);
- **direct**: the label is scored at the commit point of an empty reasoning (`commit_prefix("")`), as the
  v2 model was also trained to decide (its "direct rows").

A `DecisionRule` mixes them, per task, in probability space (T = 1, before calibration):

    p(label) = w · p_direct(label) + (1 - w) · mean over reasonings r of p(label | r)

over the greedy reasoning and `samples` sampled ones (a Monte Carlo estimate of the label probability
marginalised over the model's reasonings, i.e. self-consistency with soft votes; Wang et al. 2023). The
calibration shipped with the model (mental_r1/calibration.py) is then fitted on, and applied to, log p.
The label is the most probable one; the reasoning shown is the candidate whose own commit point gives that
label the highest probability (the greedy one on ties), so what the user reads leads to the label it
explains whenever any candidate does (`agrees`). With w = 1 the samples cannot change the label or its
probability, only which reasoning is shown, so the Assessor samples them only when the greedy reasoning does
not lead to the label (it is then shown as it is).

`DecisionRule()` (w = 0, no samples) is the greedy-reasoning decision every model had before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionRule:
    """Per task: the weight of the direct decision, and how many sampled reasonings join the greedy one."""

    direct_weight: float = 0.0
    samples: int = 0

    def __post_init__(self):
        if not 0.0 <= self.direct_weight <= 1.0:
            raise ValueError(f"direct_weight must be in [0, 1], got {self.direct_weight}")
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples}")

    @property
    def needs_direct(self) -> bool:
        return self.direct_weight > 0.0

    def to_json(self) -> dict:
        return {"direct_weight": self.direct_weight, "samples": self.samples}


@dataclass(frozen=True)
class Decision:
    logprobs: dict[str, float]  # log p(label) of the rule's mixture (exponentials sum to 1), before calibration
    shown: int  # index of the reasoning candidate to show (0 = greedy)
    agrees: bool  # the shown candidate's own commit point prefers the label of `logprobs`


def decide(rule: DecisionRule, direct: dict[str, float] | None, reasonings: Sequence[dict[str, float]]) -> Decision:
    """The rule's label distribution from the direct scores and the reasoning candidates' scores (label →
    normalised log-probability each; candidate 0 is the greedy reasoning, the next `rule.samples` sampled;
    extra candidates are ignored). The label is the argmax of the mixture; see the module docstring."""
    used = list(reasonings[: 1 + rule.samples])
    if not used:
        raise ValueError("at least the greedy reasoning's scores are needed")
    if rule.needs_direct and direct is None:
        raise ValueError("the rule weighs the direct decision but no direct scores were given")
    from mental_r1.calibration import softmax  # here: calibration.py imports this module (DecisionRule)

    labels = list(used[0])
    per_reasoning = [softmax(r) for r in used]
    mix = {lab: sum(p[lab] for p in per_reasoning) / len(per_reasoning) for lab in labels}
    if rule.needs_direct:
        pd = softmax(direct)
        mix = {lab: rule.direct_weight * pd[lab] + (1 - rule.direct_weight) * mix[lab] for lab in labels}
    logprobs = {lab: math.log(max(p, 1e-300)) for lab, p in mix.items()}
    label = max(logprobs, key=logprobs.get)
    shown = max(range(len(used)), key=lambda i: (per_reasoning[i][label], -i))
    agrees = max(per_reasoning[shown], key=per_reasoning[shown].get) == label
    return Decision(logprobs, shown, agrees)
