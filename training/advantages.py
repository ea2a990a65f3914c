"""Decision-neutral advantages: take the step's common yes/no direction out of GRPO's advantages.

Why (docs/training.md, "Why 'no', in every run"): every yes/no task's label sentence opens with "Yes,"/"No,", so
the reasoning that leads to either answer shares its phrasing across tasks, and a step whose advantages line up
with the completions' commit-point decision d = log P(yes) − log P(no) moves every binary task's threshold at
once (which the served calibration sets anyway) rather than what separates one post from another.

Measured (docs/training.md, "The reading tested"; two seeds, lr 1.5e-4): the advantages' component along d is
small (median 3 % of their sum of squares) and changes sign between steps; runs with and without it both drifted
to "yes" on one machine, so it does not set the direction of the walk, and it does not stop the loss of held-out
F1, which an update with no information of the same size (`permute_within_groups`, the null control) shows as
well. So it is an option, off by default.

`decision_neutral` regresses the advantages of the binary completions on d, centred within each group, and
keeps the residual:

    A'_i = A_i − s · (d_i − mean_group(d)),   s = Σ A_i (d_i − d̄_g) / Σ (d_i − d̄_g)²

over the completions that take part (binary, in a group with signal). The residual is orthogonal to the
decision direction over the step (Σ A'_i (d_i − d̄_g) = 0), and since d is centred per group it still sums to
zero within each group, so no prompt as a whole is pushed up or down. Within a gold-"yes" and a gold-"no"
group the sign of the reward's dependence on d differs, and it is their *difference* that survives: a
reasoning that moves the decision the right way for its post is still credited, the part common to all posts
of the step is not. Completions of multi-class tasks (no yes/no direction) and groups without signal keep
their advantages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TINY = 1e-12


@dataclass(frozen=True)
class DecisionFit:
    slope: float  # s: advantage per nat of log P(yes) − log P(no), over the step's participating completions
    share: float  # the share of those completions' advantage sum of squares along the decision direction
    rows: int  # completions that took part


def decision_direction(p_yes: float, p_no: float, floor: float = 1e-3) -> float:
    """log P(yes) − log P(no) at the commit point, each probability floored (a scored label can round to 0)."""
    return math.log(max(p_yes, floor)) - math.log(max(p_no, floor))


def decision_neutral(advantages: torch.Tensor, direction: torch.Tensor, group_size: int,
                     apply: bool = True) -> tuple[torch.Tensor, DecisionFit]:
    """advantages (N,), direction (N,) with NaN where a completion has no yes/no decision; N = groups × group_size,
    a group's completions adjacent (TRL's layout). Returns the residual advantages (a new tensor; the input when
    `apply` is false, so the fit can be logged without changing training) and the fit."""
    if advantages.shape != direction.shape or advantages.dim() != 1 or advantages.numel() % group_size:
        raise ValueError(f"advantages {tuple(advantages.shape)} and direction {tuple(direction.shape)} must be (N,) "
                         f"with N a multiple of the group size {group_size}")
    a = advantages.view(-1, group_size).double()
    d = direction.view(-1, group_size).double().to(a.device)
    # a group takes part when all its completions have a decision (one prompt, one task) and its advantages vary
    part = torch.isfinite(d).all(dim=1) & (a.abs().sum(dim=1) > TINY)  # (groups,)
    centred = torch.where(part.unsqueeze(1), d - torch.nan_to_num(d).mean(dim=1, keepdim=True), torch.zeros_like(a))
    centred = torch.nan_to_num(centred)
    denom = (centred * centred).sum()
    rows = int(part.sum()) * group_size
    if denom <= TINY:
        return advantages, DecisionFit(slope=0.0, share=0.0, rows=rows)
    slope = (a * centred).sum() / denom
    along = slope * centred
    total = (a[part] ** 2).sum()
    share = float((along ** 2).sum() / total) if total > TINY else 0.0
    fit = DecisionFit(slope=float(slope), share=share, rows=rows)
    if not apply:
        return advantages, fit
    return (a - along).view(-1).to(advantages.dtype), fit


def permute_within_groups(rewards: torch.Tensor, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """rewards (N, F) (one column per reward function), each group's rows put in a random order: every group keeps
    its rewards, hence its mean, spread and advantage sizes, but no completion keeps its own (the null control)."""
    if rewards.size(0) % group_size:
        raise ValueError(f"{rewards.size(0)} rows do not split into groups of {group_size}")
    groups = rewards.size(0) // group_size
    order = torch.stack([torch.randperm(group_size, generator=generator) for _ in range(groups)])  # (groups, G)
    index = (order + torch.arange(groups).unsqueeze(1) * group_size).view(-1).to(rewards.device)
    return rewards[index]
