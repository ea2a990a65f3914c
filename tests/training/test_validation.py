import json
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.rewards import PROB_FLOOR
from training.validation import (
    BEST_DIR,
    HISTORY_FILE,
    SCORE,
    BestTracker,
    ValidationCallback,
    load_trainable,
    save_trainable,
    validation_examples,
    validation_metrics,
)

DR, SAD = get_task("DR"), get_task("SAD")


def ex(task, label):
    return Example(task.dataset, task, "post", label)


def one_hot(rows, labels):
    return [[1.0 if name == label else 0.0 for name in row.task.label_names] for row, label in zip(rows, labels)]


def test_validation_metrics():
    rows = [ex(DR, "yes"), ex(DR, "yes"), ex(DR, "no"), ex(DR, "no"), ex(SAD, "work"), ex(SAD, "school")]
    preds = ["yes", "no", "no", "no", "work", "work"]
    m = validation_metrics(rows, one_hot(rows, preds))
    # DR: yes P 1 R 1/2 F1 2/3, no P 2/3 R 1 F1 4/5 → 73.33; SAD: work F1 2/3 (support 1), school 0 → 33.33
    assert m["val/weighted_f1/DR"] == pytest.approx(100 * (2 / 3 + 4 / 5) / 2)
    assert m["val/weighted_f1/SAD"] == pytest.approx(100 / 3)
    assert m[SCORE] == pytest.approx((m["val/weighted_f1/DR"] + m["val/weighted_f1/SAD"]) / 2)
    assert m["val/binary/pred_yes"] == 0.25 and m["val/binary/gold_yes"] == 0.5  # yes/no rows only
    # one-hot DR: P(yes) 1, 0 on the "yes" rows and 0, 0 on the "no" rows; of the 4 (yes, no) pairs 2 are
    # ranked right and 2 tie -> 0.75 (P(no) gives the same); SAD: P(work) 1 on both rows
    # (a tie: 0.5), P(school) 0 on both (0.5); labels absent from the gold rows have no AUROC
    assert m["val/auroc/DR"] == pytest.approx(0.75) and m["val/auroc/SAD"] == pytest.approx(0.5)
    assert m["val/avg_auroc"] == pytest.approx(0.625)
    # one-hot: right rows log 1 = 0, wrong rows the label_logprob reward's floor; DR 1 wrong of 4, SAD 1 of 2
    floor = math.log(PROB_FLOOR)
    assert m["val/log_p_gold/DR"] == pytest.approx(floor / 4) and m["val/log_p_gold/SAD"] == pytest.approx(floor / 2)
    assert m["val/avg_log_p_gold"] == pytest.approx((floor / 4 + floor / 2) / 2)


def test_log_p_gold_sees_a_change_that_flips_no_label():
    rows = [ex(DR, "yes"), ex(DR, "no")]
    a = validation_metrics(rows, [[0.6, 0.4], [0.4, 0.6]])
    b = validation_metrics(rows, [[0.8, 0.2], [0.2, 0.8]])  # the same labels, more sure of the gold ones
    assert a[SCORE] == b[SCORE] == 100.0
    assert a["val/avg_log_p_gold"] == pytest.approx(math.log(0.6)) and b["val/avg_log_p_gold"] == pytest.approx(math.log(0.8))


def test_auroc_ignores_a_shift_towards_one_label_that_f1_and_the_yes_share_see():
    rows = [ex(DR, "yes"), ex(DR, "yes"), ex(DR, "no"), ex(DR, "no")]
    honest = [[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]]  # P(yes), P(no): every row right
    shifted = [[0.99, 0.01], [0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]  # the same ranking, pushed towards "yes"
    a, b = validation_metrics(rows, honest), validation_metrics(rows, shifted)
    assert a["val/auroc/DR"] == b["val/auroc/DR"] == 1.0
    assert a[SCORE] == 100.0 and b[SCORE] < 100.0 and b["val/binary/pred_yes"] == 0.75


def test_label_auroc_weighs_a_datasets_tasks_by_rows():
    from training.validation import label_auroc

    irf_b, irf_t = get_task("Irf:perceived_burdensomeness"), get_task("Irf:thwarted_belongingness")
    rows = [ex(irf_b, "yes"), ex(irf_b, "no"), ex(irf_t, "yes"), ex(irf_t, "no"), ex(irf_t, "no"), ex(irf_t, "yes")]
    probs = [[0.9, 0.1], [0.2, 0.8],  # burdensomeness: ranked right, AUROC 1 (2 rows)
             [0.1, 0.9], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8]]  # belongingness: ranked wrong, AUROC 0 (4 rows)
    assert label_auroc(rows, probs) == {"Irf": pytest.approx(2 / 6)}


def test_best_tracker_patience_and_resume(tmp_path):
    t = BestTracker(patience=2)
    assert t.add(0, 50.0) == (True, False)
    assert t.add(25, 55.0) == (True, False)
    assert t.add(50, 54.0) == (False, False)
    assert t.add(75, 56.0) == (True, False)  # a new best resets the count
    assert t.add(100, 40.0) == (False, False)
    assert t.add(125, 55.9) == (False, True)  # two in a row below the best
    t.save(tmp_path / "v.json")
    back = BestTracker.load(tmp_path / "v.json", patience=2, up_to_step=100)
    assert [h["step"] for h in back.history] == [0, 25, 50, 75, 100] and back.best == {"step": 75, "score": 56.0}
    assert BestTracker(patience=0).add(0, 1.0) == (True, False) and not BestTracker.load(tmp_path / "none", 3, 0).history


def test_trainable_weights_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    model[0].weight.requires_grad_(False)  # frozen: not saved
    save_trainable(model, tmp_path / "best", {"step": 3})
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    load_trainable(model, tmp_path / "best")
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, saved[n]), n
        else:
            assert torch.equal(p, saved[n] + 1.0), n  # frozen weights are not part of best/


class ScriptedTrainer:
    """Stands in for CRPOTrainer: each validation predicts the next scripted labels; the model's weight is the
    validation's index, so restoring the best is visible."""

    def __init__(self, out, script, patience):
        self.args = SimpleNamespace(output_dir=str(out), eval_patience=patience, eval_every=1)
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.script, self.logged, self.calls = script, [], 0

    def predict_probabilities(self, examples, prompts):
        preds = self.script[self.calls]
        with torch.no_grad():
            self.model.weight.fill_(float(self.calls))
        self.calls += 1
        return one_hot(examples, preds)

    def log_outside_step(self, metrics):
        self.logged.append(metrics)

    def validation_cache_dir(self):
        return None  # the scripted validations differ on purpose: never cached

    def validation_settings(self):
        return None


def test_callback_keeps_the_best_and_stops_when_validation_falls(tmp_path):
    rows = [ex(DR, "yes"), ex(DR, "no")]
    right, wrong, half = ["yes", "no"], ["no", "yes"], ["no", "no"]
    trainer = ScriptedTrainer(tmp_path, [half, right, wrong, half], patience=2)
    cb = ValidationCallback(trainer, rows, ["p1", "p2"])
    state, control = TrainerState(max_steps=10), TrainerControl()
    cb.on_train_begin(trainer.args, state, control)  # step 0: the start
    for step in (1, 2, 3):
        state.global_step = step
        cb.on_step_end(trainer.args, state, control)
        assert control.should_training_stop == (step == 3)
    assert [m[SCORE] for m in trainer.logged] == pytest.approx([100 / 3, 100.0, 0.0, 100 / 3])
    assert [m["val/best_step"] for m in trainer.logged] == [0, 1, 1, 1]
    assert all(m["val/seconds"] >= 0 for m in trainer.logged)  # each validation's wall time
    assert json.loads((tmp_path / BEST_DIR / "best.json").read_text())["step"] == 1
    assert [h["step"] for h in json.loads((tmp_path / HISTORY_FILE).read_text())["history"]] == [0, 1, 2, 3]
    assert cb.restore_best()["step"] == 1 and trainer.model.weight.item() == 1.0  # the weights of step 1


def test_validation_rows_are_evaluate_pys(data_dir):
    from mental_r1.data import load_split
    from training.evaluate import select

    rows = validation_examples(data_dir, ["DR", "dreaddit"], 5)
    assert [e.dataset for e in rows] == ["DR"] * 5 + ["dreaddit"] * 5
    assert [e.text for e in rows[:5]] == [e.text for e in select(load_split(data_dir, "val", ["DR"]), 5, 0)["DR"]]


def test_the_start_key_changes_with_weights_rows_prompts_and_settings():
    from training.validation import start_key

    weights = [("w", torch.ones(2, 2)), ("b", torch.zeros(2))]
    rows, prompts, settings = [ex(DR, "yes"), ex(DR, "no")], ["p1", "p2"], {"rollout": "vllm"}
    key = start_key(weights, rows, prompts, settings)
    assert key == start_key(list(reversed(weights)), rows, prompts, settings)  # order of the weights is irrelevant
    assert key != start_key([("w", torch.ones(2, 2)), ("b", torch.full((2,), 1e-7))], rows, prompts, settings)
    assert key != start_key([("w", torch.ones(2, 2, dtype=torch.bfloat16)), ("b", torch.zeros(2))], rows, prompts,
                            settings)
    assert key != start_key(weights, [ex(DR, "yes"), ex(DR, "yes")], prompts, settings)  # a gold label
    assert key != start_key(weights, rows, ["p1", "p2 longer"], settings)
    assert key != start_key(weights, rows, prompts, {"rollout": "transformers"})
