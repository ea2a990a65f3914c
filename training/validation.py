"""Validation during RL: the service's decision on held-out posts, the best weights kept, early stopping.

Every `eval_every` optimizer steps (and at step 0, the start, and at the last step): greedy reasoning for
`eval_rows_per_dataset` val rows of every trained dataset with the run's own rollout backend (vLLM or
transformers, stopped at the commit point), then the labels scored at the commit point, decoding
constrained to the label set as the service does: by the RL trainer's vLLM engine when it has one
(CRPOTrainer.label_probabilities), else from the policy's logits (training/label_scoring.py); the label is
the most probable one (no calibration). Rows are those of `evaluate.py --split val --limit N --seed 0`.

Logged as one metrics.jsonl row per validation (`val/...`): weighted F1 per dataset and their average
(`val/avg_weighted_f1`, the selection score); per dataset the AUROC of the label probabilities
(`val/auroc/<dataset>`, `val/avg_auroc`: one-vs-rest per label, averaged over labels and then over the
dataset's tasks by rows; threshold-free, so a shift of every row towards one label, which the calibration's
per-label bias undoes, leaves it unchanged while it moves F1 and the "yes" share); and over yes/no rows the fraction predicted "yes" beside the
gold fraction (`val/binary/pred_yes`, `val/binary/gold_yes`; issue 19's collapse check: stay within 10
points of the start's), the mean log-probability of the gold label per dataset and its mean over datasets
(`val/log_p_gold/<dataset>`, `val/avg_log_p_gold`: the label_logprob reward on held-out posts, a proper score
that moves with every row's probability, so it resolves changes that flip too few argmax labels for F1 to
see), and the validation's wall time (`val/seconds`). The start's validation (step 0) is cached when the trainer
says what decides it (`validation_settings`): a run from the same weights, rows and settings reads it back. The best validation's trainable weights go to `output_dir/best/` and final/ is
built from them; `output_dir/validation.json` holds the history (resume reads it back). Training stops
once `eval_patience` validations in a row score below the best.

Every process runs the same (deterministic) validation, so they agree on stopping; only the main one writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from mental_r1.data import Example, load_split
from mental_r1.metrics import auroc, weighted_f1
from mental_r1.publish import publish_folder
from training.checkpoints import write_json_atomic
from training.evaluate import select
from training.label_scoring import LabelScorer
from training.rewards import PROB_FLOOR, is_binary
from training.rollout import merged_weights

log = logging.getLogger(__name__)

SCORE = "val/avg_weighted_f1"
HISTORY_FILE = "validation.json"
BEST_DIR = "best"
BEST_WEIGHTS = "trainable.safetensors"


def validation_examples(data_dir: str | Path, datasets: Sequence[str], per_dataset: int) -> list[Example]:
    """The first `per_dataset` val rows of each dataset after evaluate.py's seeded shuffle (seed 0)."""
    rows = select(load_split(data_dir, "val", datasets), per_dataset, seed=0)
    return [ex for name in sorted(rows) for ex in rows[name]]


def validation_set(tokenizer, data_dir: str | Path, datasets: Sequence[str], per_dataset: int,
                   max_prompt_tokens: int) -> tuple[list[Example], list[str]]:
    """What a trainer's `validation=` takes: the val rows of `validation_examples` and their prompts (the
    training prompts' format and length limit). Exits with an error naming the fix when there are none."""
    from training.prompts import prompt_for

    val = validation_examples(data_dir, datasets, per_dataset)
    if not val:
        raise SystemExit(f"error: no validation rows in {data_dir} for {list(datasets)}; add a val split "
                         "or set eval_every: 0")
    return val, [prompt_for(tokenizer, ex, max_prompt_tokens) for ex in val]


def label_auroc(examples: Sequence[Example], probabilities: Sequence[Sequence[float]]) -> dict[str, float]:
    """Per dataset: how well the label probabilities rank posts, whatever the decision threshold. Per task, for each
    label with positives and negatives among its rows, the AUROC of P(label) against gold == label, averaged over
    labels (on yes/no tasks both labels give the AUROC of P(yes)); the dataset's value is the mean over its tasks
    weighted by rows."""
    by_task: dict[tuple[str, str], list[tuple[Example, Sequence[float]]]] = {}
    for ex, probs in zip(examples, probabilities, strict=True):
        by_task.setdefault((ex.dataset, ex.task.id), []).append((ex, probs))
    sums: dict[str, list[float]] = {}
    for (dataset, _), rows in by_task.items():
        names = rows[0][0].task.label_names
        per_label = [auroc([p[k] for _, p in rows], [ex.label == name for ex, _ in rows]) for k, name in enumerate(names)]
        per_label = [a for a in per_label if a is not None]
        if per_label:
            total = sums.setdefault(dataset, [0.0, 0.0])
            total[0] += len(rows) * sum(per_label) / len(per_label)
            total[1] += len(rows)
    return {ds: total / n for ds, (total, n) in sorted(sums.items())}


def validation_metrics(examples: Sequence[Example], probabilities: Sequence[Sequence[float]]) -> dict[str, float]:
    """From P(label) per row (in the task's label order): weighted F1 of the most probable label per dataset and
    their mean; over yes/no rows, the predicted and gold "yes" fractions; the AUROC per dataset (label_auroc) and
    its mean; the mean log P(gold) per dataset (floored as the label_logprob reward floors it) and its mean."""
    by_ds: dict[str, tuple[list[str], list[str]]] = {}
    log_p_gold: dict[str, list[float]] = {}
    yes_pred, yes_gold = [], []
    for ex, probs in zip(examples, probabilities, strict=True):
        pred = argmax_label(ex, probs)
        p_gold = probs[ex.task.label_names.index(ex.label)]
        log_p_gold.setdefault(ex.dataset, []).append(math.log(max(p_gold, PROB_FLOOR)))  # as the reward floors it
        gold, preds = by_ds.setdefault(ex.dataset, ([], []))
        gold.append(ex.label)
        preds.append(pred)
        if is_binary(ex.task.label_names):
            yes_pred.append(pred.lower() == "yes")
            yes_gold.append(ex.label.lower() == "yes")
    out = {f"val/weighted_f1/{ds}": weighted_f1(g, p) for ds, (g, p) in sorted(by_ds.items())}
    out[SCORE] = sum(out.values()) / len(out)
    if yes_gold:
        out["val/binary/pred_yes"] = sum(yes_pred) / len(yes_pred)
        out["val/binary/gold_yes"] = sum(yes_gold) / len(yes_gold)
    aurocs = label_auroc(examples, probabilities)
    out.update({f"val/auroc/{ds}": value for ds, value in aurocs.items()})
    if aurocs:
        out["val/avg_auroc"] = sum(aurocs.values()) / len(aurocs)
    means = {ds: sum(v) / len(v) for ds, v in sorted(log_p_gold.items())}
    out.update({f"val/log_p_gold/{ds}": value for ds, value in means.items()})
    out["val/avg_log_p_gold"] = sum(means.values()) / len(means)
    return out


def argmax_label(ex: Example, probabilities: Sequence[float]) -> str:
    return ex.task.label_names[max(range(len(probabilities)), key=probabilities.__getitem__)]


@dataclass
class BestTracker:
    """Validation scores over steps: which step is best, and whether `patience` in a row fell below it."""

    patience: int
    history: list[dict] = field(default_factory=list)  # {"step", "score"} in order
    best: dict | None = None  # {"step", "score"} of the weights in best/

    def add(self, step: int, score: float) -> tuple[bool, bool]:
        """Record a validation; returns (new best, stop now)."""
        self.history.append({"step": step, "score": score})
        improved = self.best is None or score > self.best["score"]
        if improved:
            self.best = {"step": step, "score": score}
        return improved, self.patience > 0 and self.below_best() >= self.patience

    def below_best(self) -> int:
        """How many of the latest validations in a row scored below the best."""
        n = 0
        for h in reversed(self.history):
            if self.best is None or h["score"] >= self.best["score"]:
                break
            n += 1
        return n

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path, patience: int, up_to_step: int) -> BestTracker:
        """The tracker of a resumed run: validations after the resumed step are dropped (they are re-run); the
        best weights on disk stay the best, whichever step wrote them."""
        if not path.exists():
            return cls(patience)
        data = json.loads(path.read_text())
        return cls(patience, [h for h in data["history"] if h["step"] <= up_to_step], data.get("best"))


def start_key(weights: Iterable[tuple[str, torch.Tensor]], examples: Sequence[Example], prompts: Sequence[str],
              settings: dict) -> str:
    """What a step-0 validation's result depends on, hashed: the weights the model computes with (names, dtypes,
    bytes; `merged_weights`, so a fresh LoRA adapter whose B is 0 hashes as the model it starts from, whatever its
    seed drew for A), the val rows (dataset, task, gold label) and their prompts, and the settings that shape the
    greedy reasoning and its scoring (the trainer's `validation_settings()`: backend, completion length, batch,
    library versions, CPU)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, value in sorted(weights, key=lambda item: item[0]):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for ex, prompt in zip(examples, prompts, strict=True):
        h.update(json.dumps([ex.dataset, ex.task.id, ex.label, prompt]).encode())
    return h.hexdigest()


def save_trainable(model: torch.nn.Module, folder: Path, record: dict) -> None:
    """The trainable parameters (the LoRA adapter, or every weight of a full fine-tune), published atomically."""
    state = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}

    def build(tmp: Path) -> None:
        save_file(state, tmp / BEST_WEIGHTS)
        (tmp / "best.json").write_text(json.dumps(record, indent=2))

    publish_folder(folder, build)


def load_trainable(model: torch.nn.Module, folder: Path) -> None:
    state = load_file(folder / BEST_WEIGHTS)
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    assert not missing, f"{folder} holds weights the model does not have: {missing[:3]}"
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class ValidationMixin:
    """What a Trainer needs for ValidationCallback besides `predict_probabilities(examples, prompts) -> P(label)
    per row`: `attach_validation` (call at the end of __init__), `label_probabilities` / `probabilities_at_commit` (what
    the service would score after given completions) and a log row of its own per validation."""

    validation: ValidationCallback | None = None

    def validation_settings(self) -> dict | None:
        """What besides the weights and the rows decides a validation (for the step-0 cache, `start_key`), or None
        to measure the start every time. Trainers that cache override it."""
        return None

    def validation_cache_dir(self) -> Path | None:
        return None

    def attach_validation(self, validation: tuple[Sequence[Example], Sequence[str]] | None) -> None:
        """`validation`: (val examples, their prompts); validates when `args.eval_every` > 0."""
        self._scorer = LabelScorer(self.processing_class)
        if validation is not None and self.args.eval_every > 0:
            self.validation = ValidationCallback(self, *validation)
            self.add_callback(self.validation)

    def label_probabilities(self, prompts: Sequence[str], completions: Sequence[str],
                            label_texts: Sequence[Sequence[str]]) -> list[list[float]]:
        """P(label) (in `label_texts` order) at the commit point of each completion ("" = an empty reasoning:
        the direct decision), decoding constrained to the label set, from the policy's logits
        (training/label_scoring.py). A trainer with a faster scorer overrides it (CRPOTrainer: its vLLM engine)."""
        return self._scorer.probabilities(self.model, prompts, completions, label_texts,
                                          autocast=self.accelerator.autocast)

    def probabilities_at_commit(self, examples: Sequence[Example], prompts: Sequence[str],
                                completions: Sequence[str]) -> list[list[float]]:
        """For each row, P(label) in its task's label order at the commit point of its completion (uncalibrated)."""
        return self.label_probabilities(prompts, completions, [[lab.text for lab in ex.task.labels] for ex in examples])

    def log_outside_step(self, metrics: dict[str, float]) -> None:
        """A log row of its own (validation), leaving the step's accumulated training metrics to their row.
        Logging clears `control.should_log`; the step's own row is still due, so the flag is put back."""
        should_log = self.control.should_log
        transformers.Trainer.log(self, dict(metrics))
        self.control.should_log = should_log


class ValidationCallback(TrainerCallback):
    """Runs `trainer.validate(...)` on schedule; keeps the best weights; stops training when validation falls."""

    def __init__(self, trainer, examples: Sequence[Example], prompts: Sequence[str]):
        self.trainer = trainer
        self.examples, self.prompts = list(examples), list(prompts)
        self.out = Path(trainer.args.output_dir)
        self.tracker = BestTracker(trainer.args.eval_patience)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:  # a new run (a stale history or best/ in output_dir is replaced)
            self.tracker = BestTracker(args.eval_patience)
            self._validate(args, state, control, start=True)  # the start: what RL has to beat
            return
        self.tracker = BestTracker.load(self.out / HISTORY_FILE, args.eval_patience, state.global_step)
        best = self.out / BEST_DIR / "best.json"
        if best.exists():  # the weights on disk decide (a kill may have come between the two writes)
            self.tracker.best = json.loads(best.read_text())

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % args.eval_every == 0 or state.global_step >= state.max_steps:
            self._validate(args, state, control)

    def measure(self) -> dict[str, float]:
        """One validation of the trainer's current weights (validation_metrics, and its wall time)."""
        t0 = time.perf_counter()
        probs = self.trainer.predict_probabilities(self.examples, self.prompts)
        metrics = validation_metrics(self.examples, probs)
        metrics["val/seconds"] = time.perf_counter() - t0
        return metrics

    def measure_start(self) -> dict[str, float]:
        """The step-0 validation, read from the trainer's cache when the same start (weights, rows, prompts and
        settings: `start_key`) was measured before, e.g. by another run of a comparison; else measured and
        stored. Validation is deterministic (greedy reasoning, fixed rows), so the cached result is the one a
        new measurement would give; `val/cached` says which it was."""
        folder, settings = self.trainer.validation_cache_dir(), self.trainer.validation_settings()
        if folder is None or settings is None:
            return self.measure()
        weights = merged_weights(self.trainer.accelerator.unwrap_model(self.trainer.model), torch.float32)
        path = Path(folder).expanduser() / f"{start_key(weights, self.examples, self.prompts, settings)}.json"
        if path.exists():
            metrics = json.loads(path.read_text())
            log.info("step-0 validation read from %s (the same start, rows and settings were measured before)", path)
            return metrics | {"val/cached": 1.0}
        metrics = self.measure()
        if self.trainer.args.process_index == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, metrics)
        return metrics | {"val/cached": 0.0}

    def _validate(self, args, state, control, start: bool = False) -> None:
        metrics = self.measure_start() if start else self.measure()
        improved, stop = self.tracker.add(state.global_step, metrics[SCORE])
        if improved and state.is_world_process_zero:
            save_trainable(self.trainer.model, self.out / BEST_DIR, {"step": state.global_step, "score": metrics[SCORE]})
        if state.is_world_process_zero:
            self.tracker.save(self.out / HISTORY_FILE)
        metrics["val/best_step"] = self.tracker.best["step"]
        log.info("validation at step %d: %s = %.2f, AUROC %.3f (best %.2f at step %d)%s", state.global_step, SCORE,
                 metrics[SCORE], metrics.get("val/avg_auroc", float("nan")), self.tracker.best["score"],
                 self.tracker.best["step"],
                 f"; stopping: it fell below the best for {args.eval_patience} validations" if stop else "")
        self.trainer.log_outside_step(metrics)
        if stop:
            control.should_training_stop = True

    def restore_best(self) -> dict | None:
        """Load the best validation's weights into the model (all processes); returns its {"step", "score"}."""
        folder = self.out / BEST_DIR
        if self.tracker.best is None or not (folder / BEST_WEIGHTS).exists():
            return None
        load_trainable(self.trainer.model, folder)
        return json.loads((folder / "best.json").read_text())
