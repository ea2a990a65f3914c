"""The stage-wise entropy coefficients of CRPO: beta_t = M · tanh(t − tau), t = 1..5.

With the paper's M = 0.06 and tau = 3.5 this gives −0.0592, −0.0543, −0.0277, +0.0277, +0.0543 for
stimulus … mental_state. The coefficient multiplies the stage's mean entropy in the *loss* (see
entropy.py), so a negative beta rewards entropy (explore the early stages) and a positive beta penalises
it (commit to the late ones). An explicit per-stage list replaces the formula when given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mental_r1.contract import STAGE_NAMES

PAPER_M = 0.06
PAPER_TAU = 3.5


def stage_betas(m: float = PAPER_M, tau: float = PAPER_TAU, explicit: Sequence[float] | None = None,
                num_stages: int = len(STAGE_NAMES)) -> tuple[float, ...]:
    """beta_t for t = 1..num_stages: `explicit` if given (its length must be num_stages), else M·tanh(t − tau)."""
    if explicit is not None:
        if len(explicit) != num_stages:
            raise ValueError(f"stage_betas has {len(explicit)} values; give one per stage ({num_stages}: "
                             f"{', '.join(STAGE_NAMES)})")
        return tuple(float(b) for b in explicit)
    return tuple(m * math.tanh(t - tau) for t in range(1, num_stages + 1))
