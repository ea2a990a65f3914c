import math

import pytest

from training.schedule import stage_betas


def test_paper_schedule_values():
    assert [round(b, 4) for b in stage_betas()] == [-0.0592, -0.0543, -0.0277, 0.0277, 0.0543]


def test_formula_and_sign_change_at_tau():
    betas = stage_betas(m=1.0, tau=2.5)
    assert betas[0] == pytest.approx(math.tanh(-1.5))
    assert betas[1] < 0 < betas[2]


def test_explicit_list_replaces_formula_and_is_checked():
    assert stage_betas(explicit=[0.1, 0, 0, 0, -0.1]) == (0.1, 0.0, 0.0, 0.0, -0.1)
    with pytest.raises(ValueError, match="one per stage"):
        stage_betas(explicit=[0.1, 0.2])
