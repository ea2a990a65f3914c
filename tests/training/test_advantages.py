"""The decision-neutral advantages (training/advantages.py): pure tensor math."""

import math

import pytest
import torch

from training.advantages import decision_direction, decision_neutral

NAN = math.nan


def grouped_sums(x: torch.Tensor, group: int) -> torch.Tensor:
    return x.view(-1, group).sum(dim=1)


def test_a_step_that_only_says_towards_no_is_left_with_nothing_along_the_decision():
    # two gold-"no" groups: the completions whose decision leans to "no" (d < 0) are the ones credited
    d = torch.tensor([2.0, 1.0, -1.0, -2.0, 1.5, 0.5, -0.5, -1.5])
    a = -(d - d.view(-1, 4).mean(1).repeat_interleave(4))  # advantage exactly opposite to the direction
    residual, fit = decision_neutral(a, d, group_size=4)
    assert fit.slope == pytest.approx(-1.0) and fit.share == pytest.approx(1.0) and fit.rows == 8
    torch.testing.assert_close(residual, torch.zeros(8))


def test_opposite_groups_keep_what_separates_them_and_lose_the_common_part():
    d = torch.tensor([2.0, 1.0, -1.0, -2.0, 2.0, 1.0, -1.0, -2.0])
    # gold "yes" group credited along +d (weakly), gold "no" group against it (strongly): net push to "no"
    a = torch.cat([0.5 * d[:4], -1.5 * d[4:]])
    residual, fit = decision_neutral(a, d, group_size=4)
    assert fit.slope == pytest.approx(-0.5)
    torch.testing.assert_close(residual, torch.cat([1.0 * d[:4], -1.0 * d[4:]]))  # symmetric: no net direction
    centred = d - d.view(-1, 4).mean(1).repeat_interleave(4)
    assert float((residual * centred).sum()) == pytest.approx(0.0, abs=1e-6)  # orthogonal to the direction
    torch.testing.assert_close(grouped_sums(residual, 4), torch.zeros(2))  # every group still sums to zero


def test_multiclass_rows_and_groups_without_signal_keep_their_advantages():
    d = torch.tensor([1.0, -1.0, NAN, NAN, 0.5, -0.5])
    a = torch.tensor([-1.0, 1.0, 0.7, -0.7, 0.0, 0.0])  # binary group, multi-class group, tied binary group
    residual, fit = decision_neutral(a, d, group_size=2)
    assert fit.rows == 2
    torch.testing.assert_close(residual[2:], a[2:])
    torch.testing.assert_close(residual[:2], torch.zeros(2))


def test_the_fit_is_logged_without_changing_the_advantages_when_not_applied():
    d = torch.tensor([1.0, -1.0, 2.0, -2.0])
    a = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    residual, fit = decision_neutral(a, d, group_size=2, apply=False)
    assert residual is a and fit.slope < 0 and 0 < fit.share <= 1


def test_no_binary_rows_means_no_fit():
    a = torch.tensor([1.0, -1.0])
    residual, fit = decision_neutral(a, torch.tensor([NAN, NAN]), group_size=2)
    assert residual is a and fit.rows == 0 and fit.slope == 0.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="multiple of the group size"):
        decision_neutral(torch.zeros(5), torch.zeros(5), group_size=2)


def test_the_direction_is_the_floored_log_odds():
    assert decision_direction(0.8, 0.2) == pytest.approx(math.log(4))
    assert decision_direction(1.0, 0.0) == pytest.approx(-math.log(1e-3))


def test_the_null_control_permutes_rewards_within_groups_only():
    from training.advantages import permute_within_groups

    rewards = torch.arange(12, dtype=torch.float32).view(6, 2)  # 3 groups of 2 rows, 2 reward functions
    rewards[:, 1] *= -1
    out = permute_within_groups(rewards, 2, torch.Generator().manual_seed(0))
    for g in range(3):
        rows = {tuple(r) for r in out[2 * g:2 * g + 2].tolist()}
        assert rows == {tuple(r) for r in rewards[2 * g:2 * g + 2].tolist()}  # a group keeps its own rows
    many = [permute_within_groups(rewards, 2, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.equal(m, rewards) for m in many)  # and some seed moves them
    with pytest.raises(ValueError, match="groups of 4"):
        permute_within_groups(rewards, 4, torch.Generator())
