import pytest

from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.step_order import paired_order

DR, SAD, IRF = get_task("DR"), get_task("SAD"), get_task("Irf:thwarted_belongingness")


def rows(task, label, n, tag=""):
    return [Example(task.dataset, task, f"{task.id}-{label}-{i}{tag}", label) for i in range(n)]


def test_every_step_is_one_task_with_both_classes():
    # a skewed pool, like the first runs' steps 2-6 (9 "no" for 1 "yes")
    pool = rows(DR, "no", 9) + rows(DR, "yes", 3) + rows(IRF, "yes", 4) + rows(IRF, "no", 4) + \
        rows(SAD, "school", 3) + rows(SAD, "work", 3)
    order = paired_order(pool, 2, seed=0)
    steps = [order[i:i + 2] for i in range(0, len(order), 2)]
    assert len(order) % 2 == 0
    for step in steps:
        assert len({ex.task.id for ex in step}) == 1
        assert len({ex.label for ex in step}) == 2
    dr = [s for s in steps if s[0].task is DR]
    assert len(dr) == 3  # the 6 "no" without a "yes" partner are left out, not paired with each other
    assert sum(len(s) for s in steps if s[0].task is IRF) == 8
    assert len({ex.text for ex in order}) == len(order)  # nothing repeated
    assert paired_order(pool, 2, seed=0) == order and paired_order(pool, 2, seed=1) != order


def test_four_prompts_a_step_hold_two_of_each_class():
    order = paired_order(rows(DR, "yes", 8) + rows(DR, "no", 8), 4, seed=3)
    assert len(order) == 16
    for i in range(0, 16, 4):
        assert sorted(ex.label for ex in order[i:i + 4]) == ["no", "no", "yes", "yes"]


def test_one_prompt_a_step_cannot_pair():
    with pytest.raises(ValueError, match="at least 2"):
        paired_order(rows(DR, "yes", 2), 1, seed=0)


def test_round_robin_visits_every_dataset_once_a_round():
    loneliness = get_task("loneliness")
    pool = rows(DR, "no", 8) + rows(DR, "yes", 8) + rows(SAD, "school", 4) + rows(SAD, "work", 4) + \
        rows(loneliness, "yes", 2) + rows(loneliness, "no", 2)
    order = paired_order(pool, 2, seed=0, rotate_datasets=True)
    steps = [order[i:i + 2] for i in range(0, len(order), 2)]
    datasets = [s[0].dataset for s in steps]
    assert len(steps) == 8 + 4 + 2 and all(len({ex.label for ex in s}) == 2 for s in steps)
    assert sorted(datasets[:3]) == sorted(datasets[3:6]) == ["DR", "SAD", "loneliness"]  # rounds of all three
    assert sorted(datasets[6:8]) == sorted(datasets[8:10]) == ["DR", "SAD"]  # loneliness has run out
    assert datasets[10:] == ["DR"] * 4
    assert sorted(ex.text for ex in order) == sorted(ex.text for ex in paired_order(pool, 2, seed=0))  # same rows


def test_tasks_per_step_mixes_datasets_each_with_both_classes():
    loneliness = get_task("loneliness")
    pool = rows(DR, "no", 8) + rows(DR, "yes", 8) + rows(SAD, "school", 4) + rows(SAD, "work", 4) + \
        rows(loneliness, "yes", 2) + rows(loneliness, "no", 2)
    order = paired_order(pool, 4, seed=0, rotate_datasets=True, tasks_per_step=2)
    steps = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert len(order) % 4 == 0 and len({ex.text for ex in order}) == len(order)
    for step in steps:
        halves = [step[:2], step[2:]]
        assert {h[0].dataset for h in halves} == {ex.dataset for ex in step} and len(halves[0]) == 2
        assert halves[0][0].dataset != halves[1][0].dataset  # two datasets a step
        assert all(len({ex.label for ex in h}) == 2 and len({ex.task.id for ex in h}) == 1 for h in halves)
    # 14 pairs (DR 8, SAD 4, loneliness 2): a step takes one DR pair at most, so at most 6 steps; the chunks are
    # taken in the round-robin order, not packed optimally (a SAD + loneliness step leaves a DR pair out)
    assert 5 <= len(steps) <= 6 and sum("DR" in (s[0].dataset, s[2].dataset) for s in steps) >= len(steps) - 1
    assert paired_order(pool, 4, seed=0, tasks_per_step=1) == paired_order(pool, 4, seed=0)  # the default
    with pytest.raises(ValueError, match="must divide"):
        paired_order(pool, 4, seed=0, tasks_per_step=3)
    with pytest.raises(ValueError, match="at least 2 prompts per task"):
        paired_order(pool, 4, seed=0, tasks_per_step=4)


def test_a_dataset_left_alone_cannot_fill_a_mixed_step():
    order = paired_order(rows(DR, "yes", 4) + rows(DR, "no", 4), 4, seed=0, tasks_per_step=2)
    assert order == []  # every step needs two datasets; one dataset's chunks are all left out
