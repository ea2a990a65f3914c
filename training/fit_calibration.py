"""Fit the calibration shipped with a model (mental_r1/calibration.py) on a validation run of evaluate.py.

    python training/evaluate.py --model runs/sft_v1/checkpoint-250 --data-dir ../shared/data/imhi \
        --split val --limit 100 --output runs/eval/val.json
    python training/fit_calibration.py runs/eval/val.json --label-bias --output runs/eval/calibration.json

Reads the per-row label log-probabilities that evaluate.py keeps (the model is not run again) and compares,
by 2-fold cross-validation over the rows of each dataset (fit on one half, measure on the other, both ways),
the model's raw probabilities, a fitted temperature, and (with `--label-bias`) a temperature plus per-label
biases for every task: weighted F1 per dataset, pooled ECE and AUROC. It then fits the chosen calibration on
all rows and writes it. Refuses a test-split run: calibration is chosen on validation data only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mental_r1.calibration import Calibration, fit_label_bias, fit_temperature, nll
from mental_r1.tasks import TASKS
from training.eval_report import Prediction, recalibrated, results_report


def load_predictions(path: Path) -> tuple[dict, dict[str, list[Prediction]]]:
    results = json.loads(path.read_text())
    if "predictions" not in results:
        raise SystemExit(f"error: {path} has no per-row predictions; write it with the current training/evaluate.py")
    if results.get("split") == "test":
        raise SystemExit(f"error: {path} is a test-split run; calibration is fitted on validation data only "
                         "(evaluate.py --split val)")
    by_ds: dict[str, list[Prediction]] = defaultdict(list)
    for r in results["predictions"]:
        by_ds[r["dataset"]].append(Prediction(r["dataset"], r["gold"], r["label"], 0.0, r["format_valid"], r["task"],
                                              r["label_logprobs"]))
    return results, dict(by_ds)


def fit(preds: list[Prediction], label_bias: bool) -> Calibration:
    """Temperature on every row; then, optionally, per-label biases per task at that temperature."""
    t = fit_temperature([(p.label_logprobs, p.gold) for p in preds])
    if not label_bias:
        return Calibration(t)
    by_task: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        by_task[p.task].append(p)
    return Calibration(t, {task: fit_label_bias([(p.label_logprobs, p.gold) for p in rows], t)
                           for task, rows in sorted(by_task.items())})


def evaluate(preds: dict[str, list[Prediction]]) -> dict:
    """evaluate.py's results document for recalibrated rows (a registry task's label order, else the scored labels)."""
    def labels(p: Prediction):
        return TASKS[p.task].label_names if p.task in TASKS else sorted(p.label_logprobs)

    return results_report(preds, {name: labels(rows[0]) for name, rows in preds.items()})


def cross_validated(preds: dict[str, list[Prediction]], method) -> dict:
    """Each half of every dataset recalibrated with what `method` fits on the other half."""
    halves = [{n: v[k::2] for n, v in preds.items()} for k in (0, 1)]
    out: dict[str, list[Prediction]] = defaultdict(list)
    for k in (0, 1):
        cal = method([p for v in halves[1 - k].values() for p in v])
        for n, v in halves[k].items():
            out[n].extend(recalibrated(v, cal))
    return evaluate(dict(out))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="an evaluate.py JSON of a validation run")
    ap.add_argument("--label-bias", action="store_true", help="also fit per-label biases for every task")
    ap.add_argument("--output", required=True, type=Path, help="calibration.json to write")
    args = ap.parse_args(argv)
    results, preds = load_predictions(args.results)
    flat = [p for v in preds.values() for p in v]
    methods = {"raw (T = 1)": lambda rows: Calibration(),
               "temperature": lambda rows: fit(rows, False)}
    if args.label_bias:
        methods["temperature + label bias"] = lambda rows: fit(rows, True)
    table = {name: cross_validated(preds, m) for name, m in methods.items()}
    names = list(preds)
    print("2-fold cross-validated on", args.results, f"({len(flat)} rows)")
    print("| calibration | " + " | ".join(names) + " | average | ECE | AUROC |")
    print("|---|" + "---:|" * (len(names) + 3))
    for name, r in table.items():
        f1 = " | ".join(f"{r['datasets'][n]['weighted_f1']:.1f}" for n in names)
        roc = r["pooled"]["auroc"]
        print(f"| {name} | {f1} | {r['average_weighted_f1']:.1f} | {r['pooled']['ece']:.3f} | "
              f"{'n/a' if roc is None else f'{roc:.3f}'} |")

    final = fit(flat, args.label_bias)
    rows = [(p.label_logprobs, p.gold) for p in flat]
    doc = {"temperature": final.temperature, "label_bias": final.label_bias,
           "fitted_on": f"{results.get('split')} split, datasets {', '.join(names)}: {len(flat)} rows "
                        f"(limit {results.get('limit')}, seed {results.get('seed')}) of {results.get('model')}",
           "nll_at_1": nll(rows, 1.0), "nll_at_temperature": nll(rows, final.temperature),
           "cross_validated": {name: {"average_weighted_f1": r["average_weighted_f1"],
                                      "weighted_f1": {n: r["datasets"][n]["weighted_f1"] for n in names},
                                      **{k: r["pooled"][k] for k in ("ece", "auroc", "accuracy")}}
                               for name, r in table.items()}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2))
    print(f"\nfitted temperature {final.temperature:.3f}"
          + (f" and label biases for {len(final.label_bias)} tasks" if final.label_bias else "")
          + f"; wrote {args.output}")


if __name__ == "__main__":
    main()
