"""Fit the calibration shipped with a model (mental_r1/calibration.py) on a validation run of evaluate.py, with
conformal label sets, and measure a fitted calibration on another run.

    python training/evaluate.py --model runs/sft_v2/final --data-dir ../shared/data/imhi --split val \\
        --output runs/eval/val.json
    python training/fit_calibration.py runs/eval/val.json --label-bias --output runs/eval/calibration.json
    python training/fit_calibration.py --apply runs/eval/calibration.json --on runs/eval/test.json \\
        --output runs/eval/calibration_test.json

Reads the per-row label log-probabilities that evaluate.py keeps (the model is not run again). Per task id,
the rows are dealt into `--folds` folds (k, default 2) stratified by gold label, and:

1. Temperature: a task with at least `--min-rows` rows (default 20) gets its own T, fitted by NLL on its
   rows; the others use the shared T fitted on every row (the file says which, and why).
2. Label biases (`--label-bias`), for tasks with their own T: k-fold cross-validated NLL of T alone vs T plus
   per-label biases (each fitted on the other folds, measured on the held-out one); the biases are kept only
   where they lower it by more than one standard error of the per-row difference (the one-standard-error
   rule: a gain within CV noise does not earn a label-changing parameter). The file records the decision,
   the held-out NLLs (and the raw one), the improvement and its standard error per task.
3. Conformal threshold (split conformal, `--alpha` 0.1: sets that hold the true label for 90 % of posts), for
   tasks with at least `--min-rows` rows, CROSS-FITTED: every row's calibrated probabilities come from the
   calibration (the structure chosen in 1-2) fitted on the other folds, and the threshold is the conformal
   quantile of these n out-of-fold scores (mental_r1.calibration.conformal_threshold). Why: a calibration
   fitted on the rows that then set the threshold has seen them, so their scores look better than a new
   post's and the sets come out too small; a plain split (calibration on one half, threshold on the other)
   is exact but leaves each with half of rows that are already few (tens per task). Cross-fitting uses every
   row for both while no row is scored by a calibration fitted on it. The shipped calibration is refitted on
   all rows: a T and a few biases fitted on k/(k-1) times the rows of each fold fit, close to them; the fold
   fits, if anything, are the noisier, which lowers the threshold (larger sets, more coverage). The
   guarantee is marginal (over posts, not per class) and for posts like the validation ones: measure the
   coverage on untouched data with --apply.

It prints (and writes into calibration.json) a 2-fold cross-validated comparison by dataset (halves of each
dataset: everything fitted on one half, measured on the other, both ways) of the raw probabilities, one
shared temperature (v1), a temperature per task and, with --label-bias, per-task temperatures plus the
biases where cross-validation keeps them, with the label sets: weighted F1 per dataset, pooled ECE, AUROC,
label-set coverage and mean set size. Then, per task on the rows given: raw vs calibrated NLL, ECE and
AUROC of confidence (how well the chosen label's probability separates right from wrong answers; calibrated
= out of fold), and the label sets' coverage (>= 1 - alpha on these rows by construction) and mean size.
Refuses a test-split run: calibration is fitted on validation data only.

--apply CALIBRATION --on RUN measures a fitted calibration.json, as shipped, on another evaluate.py run
(e.g. the untouched part): per task and pooled, raw vs calibrated NLL, ECE and AUROC, and the label sets'
coverage and mean size; --output writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mental_r1.calibration import (
    DEFAULT_ALPHA,
    Calibration,
    conformal_threshold,
    fit_label_bias,
    fit_temperature,
    read_calibration,
    softmax,
)
from mental_r1.metrics import auroc, expected_calibration_error, label_set_coverage, mean_nll
from mental_r1.tasks import TASKS
from training.eval_report import Prediction, recalibrated, results_report

Row = tuple[dict[str, float], str]  # (label → log-probability, gold label)
BIAS = "temperature + label bias"


def load_predictions(path: Path, fitting: bool = True) -> tuple[dict, dict[str, list[Prediction]]]:
    results = json.loads(path.read_text())
    if "predictions" not in results:
        raise SystemExit(f"error: {path} has no per-row predictions; write it with the current training/evaluate.py")
    if fitting and results.get("split") == "test":
        raise SystemExit(f"error: {path} is a test-split run; calibration is fitted on validation data only "
                         "(evaluate.py --split val); measure a fitted one on it with --apply CALIBRATION --on RUN")
    by_ds: dict[str, list[Prediction]] = defaultdict(list)
    for r in results["predictions"]:
        by_ds[r["dataset"]].append(Prediction(r["dataset"], r["gold"], r["label"], 0.0, r["format_valid"], r["task"],
                                              r["label_logprobs"]))
    return results, dict(by_ds)


def by_task(preds: Sequence[Prediction]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for p in preds:
        out[p.task].append((p.label_logprobs, p.gold))
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------ folds and fits
def stratified_folds(gold: Sequence[str], k: int) -> list[int]:
    """Each row's fold: the rows ordered by gold label (stably) are dealt round-robin, so every fold gets each
    label's rows in turn and fold sizes differ by at most one."""
    fold = [0] * len(gold)
    for j, i in enumerate(sorted(range(len(gold)), key=lambda i: gold[i])):
        fold[i] = j % k
    return fold


@dataclass(frozen=True)
class Choice:
    """A task's calibration structure: its own temperature (else the shared one) and per-label biases."""

    own_temperature: bool
    label_bias: bool = False


def fit_with(rows: dict[str, list[Row]], choice: dict[str, Choice]) -> Calibration:
    """The calibration of the chosen structure fitted on `rows`: the shared T on every row, a task's own T on its
    rows, its biases at that T. Tasks not in `choice` get the shared T."""
    shared = fit_temperature([r for v in rows.values() for r in v])
    temps, biases = {}, {}
    for task, v in rows.items():
        c = choice.get(task, Choice(False))
        if c.own_temperature:
            temps[task] = fit_temperature(v)
        if c.label_bias:
            biases[task] = fit_label_bias(v, temps.get(task, shared))
    return Calibration(shared, biases, temps)


def out_of_fold(rows: dict[str, list[Row]], folds: dict[str, list[int]], k: int,
                fit: Callable[[dict[str, list[Row]]], Calibration]) -> dict[str, list[dict[str, float]]]:
    """Every row's calibrated probabilities under `fit` of the rows of the other folds (all tasks at once)."""
    out = {task: [{} for _ in v] for task, v in rows.items()}
    for j in range(k):
        train = {t: [r for r, f in zip(v, folds[t]) if f != j] for t, v in rows.items()}
        cal = fit({t: v for t, v in train.items() if v})
        for task, v in rows.items():
            for i, (r, f) in enumerate(zip(v, folds[task])):
                if f == j:
                    out[task][i] = cal.probabilities(task, r[0])
    return out


def held_out_nlls(task: str, rows: list[Row], folds: list[int], k: int, choice: Choice) -> list[float]:
    """Each row's NLL of its gold label under `choice` fitted on the other folds."""
    probs = out_of_fold({task: rows}, {task: folds}, k, lambda tr: fit_with(tr, {task: choice}))[task]
    return [mean_nll([p], [g]) for p, (_, g) in zip(probs, rows)]


def bias_helps(nll_temperature: Sequence[float], nll_bias: Sequence[float]) -> tuple[bool, float, float]:
    """Whether biases lower the held-out NLL by more than one standard error of the mean per-row difference
    (the one-standard-error rule: the simpler calibration unless the other is better beyond CV noise), the
    mean improvement and its standard error."""
    d = [a - b for a, b in zip(nll_temperature, nll_bias, strict=True)]
    mean = sum(d) / len(d)
    se = (sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5 if len(d) > 1 else 0.0
    return mean > se, mean, se


def choose(rows: dict[str, list[Row]], label_bias: bool, min_rows: int, k: int) -> tuple[dict[str, Choice], dict]:
    """Each task's structure, and what decided it (for calibration.json)."""
    choice, why = {}, {}
    for task, v in rows.items():
        own = len(v) >= min_rows
        why[task] = {"n": len(v), "temperature_from": "task" if own else
                     f"shared (the top-level temperature): {len(v)} rows < --min-rows {min_rows}"}
        keep = False
        if own and label_bias:
            folds = stratified_folds([g for _, g in v], k)
            t = held_out_nlls(task, v, folds, k, Choice(True))
            b = held_out_nlls(task, v, folds, k, Choice(True, True))
            keep, gain, se = bias_helps(t, b)
            why[task]["label_bias_cv"] = {
                "folds": k, "kept": keep, "improvement": gain, "standard_error": se,
                "held_out_nll": {"raw": mean_nll([softmax(lp) for lp, _ in v], [g for _, g in v]),
                                 "temperature": sum(t) / len(t), BIAS: sum(b) / len(b)}}
        elif label_bias:
            why[task]["label_bias_cv"] = {"kept": False, "why": f"{len(v)} rows < --min-rows {min_rows}"}
        choice[task] = Choice(own, keep)
    return choice, why


def fit_all(rows: dict[str, list[Row]], *, label_bias: bool, min_rows: int = 20, k: int = 2,
            alpha: float = DEFAULT_ALPHA) -> tuple[Calibration, dict, dict[str, list[dict[str, float]]]]:
    """The calibration with conformal thresholds fitted on `rows`, each task's calibration.json entry, and the
    out-of-fold probabilities the thresholds were fitted on."""
    choice, tasks = choose(rows, label_bias, min_rows, k)
    folds = {t: stratified_folds([g for _, g in v], k) for t, v in rows.items()}
    oof = out_of_fold(rows, folds, k, lambda tr: fit_with(tr, choice))
    final = fit_with(rows, choice)
    thresholds = {}
    for task, v in rows.items():
        entry = tasks[task]
        if task in final.task_temperature:
            entry["temperature"] = final.task_temperature[task]
        if task in final.label_bias:
            entry["label_bias"] = final.label_bias[task]
        tau = conformal_threshold([p[g] for p, (_, g) in zip(oof[task], v)], alpha) if len(v) >= min_rows else None
        entry["label_set"] = {"alpha": alpha, "threshold": tau, "n": len(v)}
        if tau is not None:
            thresholds[task] = tau
            entry["label_set"]["fitted"] = f"cross-fitted: out-of-fold probabilities, {k} folds"
        else:
            entry["label_set"]["why"] = (f"{len(v)} rows < --min-rows {min_rows}" if len(v) < min_rows else
                                         f"{len(v)} rows are too few for {1 - alpha:.0%} coverage")
    cal = Calibration(final.temperature, final.label_bias, final.task_temperature, thresholds)
    return cal, tasks, oof


# ------------------------------------------------------------------------------------------------ reports
def task_metrics(probs: Sequence[dict[str, float]], gold: Sequence[str], sets: Sequence[Sequence[str]] | None = None
                 ) -> dict:
    """n, accuracy, NLL, ECE and AUROC of confidence (the chosen label's probability, right vs wrong), and with
    label sets their coverage and mean size."""
    labels = [max(p, key=p.get) for p in probs]
    conf = [p[lab] for p, lab in zip(probs, labels)]
    correct = [lab == g for lab, g in zip(labels, gold)]
    out = {"n": len(gold), "accuracy": sum(correct) / len(gold), "nll": mean_nll(probs, gold),
           "ece": expected_calibration_error(conf, correct), "auroc": auroc(conf, correct)}
    if sets is not None:
        out |= {"label_set_coverage": label_set_coverage(sets, gold),
                "mean_label_set_size": sum(len(s) for s in sets) / len(sets)}
    return out


def measure(cal: Calibration, rows: dict[str, list[Row]],
            probs: dict[str, list[dict[str, float]]] | None = None) -> dict:
    """Per task and pooled: raw (T = 1) vs calibrated metrics and the label sets (tasks with a threshold).
    `probs` are the calibrated probabilities (out of fold when fitting); default: `cal` applied to the rows."""
    probs = probs or {t: [cal.probabilities(t, lp) for lp, _ in v] for t, v in rows.items()}
    out, pooled = {}, defaultdict(list)
    for task, v in rows.items():
        gold = [g for _, g in v]
        raw = [softmax(lp) for lp, _ in v]
        tau = cal.label_set_threshold.get(task)
        sets = None if tau is None else [cal.label_set(task, p) for p in probs[task]]
        out[task] = {"threshold": tau, "raw": task_metrics(raw, gold), "calibrated": task_metrics(probs[task], gold, sets)}
        pooled["gold"] += gold
        pooled["raw"] += raw
        pooled["cal"] += probs[task]
        if sets is not None:
            pooled["set_gold"] += gold
            pooled["sets"] += sets
    if pooled["gold"]:
        cal_pooled = task_metrics(pooled["cal"], pooled["gold"])
        if pooled["sets"]:
            cal_pooled |= {"label_set_n": len(pooled["sets"]),
                           "label_set_coverage": label_set_coverage(pooled["sets"], pooled["set_gold"]),
                           "mean_label_set_size": sum(map(len, pooled["sets"])) / len(pooled["sets"])}
        out["pooled"] = {"threshold": None, "raw": task_metrics(pooled["raw"], pooled["gold"]),
                         "calibrated": cal_pooled}
    return out


def measure_table(report: dict, calibrated: str = "cal.") -> str:
    def num(x, f=".3f"):
        return "n/a" if x is None else format(x, f)

    head = (f"| task | n | NLL raw | NLL {calibrated} | ECE raw | ECE {calibrated} | AUROC raw | AUROC {calibrated} | "
            "threshold | set coverage | mean set size |")
    rows = [head, "|---|" + "---:|" * 10]
    for task, r in report.items():
        a, b = r["raw"], r["calibrated"]
        cov = "n/a" if "label_set_coverage" not in b else f"{100 * b['label_set_coverage']:.1f} %"
        rows.append(f"| {task} | {a['n']} | {a['nll']:.3f} | {b['nll']:.3f} | {a['ece']:.3f} | {b['ece']:.3f} | "
                    f"{num(a['auroc'])} | {num(b['auroc'])} | {num(r.get('threshold'))} | {cov} | "
                    f"{num(b.get('mean_label_set_size'), '.2f')} |")
    return "\n".join(rows)


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


def comparison(preds: dict[str, list[Prediction]], label_bias: bool, min_rows: int, k: int, alpha: float) -> dict:
    methods = {"raw (T = 1)": lambda ps: Calibration(),
               "shared temperature": lambda ps: Calibration(fit_temperature([(p.label_logprobs, p.gold) for p in ps])),
               "temperature per task": lambda ps: fit_all(by_task(ps), label_bias=False, min_rows=min_rows, k=k,
                                                          alpha=alpha)[0]}
    if label_bias:
        methods["temperature per task + label bias where CV keeps it"] = lambda ps: fit_all(
            by_task(ps), label_bias=True, min_rows=min_rows, k=k, alpha=alpha)[0]
    return {name: cross_validated(preds, m) for name, m in methods.items()}


def comparison_table(table: dict, names: list[str]) -> str:
    rows = ["| calibration | " + " | ".join(names) + " | average | ECE | AUROC | set coverage | mean set size |",
            "|---|" + "---:|" * (len(names) + 5)]
    for name, r in table.items():
        f1 = " | ".join(f"{r['datasets'][n]['weighted_f1']:.1f}" for n in names)
        p = r["pooled"]
        roc = "n/a" if p["auroc"] is None else f"{p['auroc']:.3f}"
        sets = (f"{100 * p['label_set_coverage']:.1f} % | {p['mean_label_set_size']:.2f}"
                if "label_set_coverage" in p else "n/a | n/a")
        rows.append(f"| {name} | {f1} | {r['average_weighted_f1']:.1f} | {p['ece']:.3f} | {roc} | {sets} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------------- main
def fit_main(args) -> None:
    results, preds = load_predictions(args.results)
    flat = [p for v in preds.values() for p in v]
    names = list(preds)
    table = comparison(preds, args.label_bias, args.min_rows, args.folds, args.alpha)
    print(f"2-fold cross-validated by dataset on {args.results} ({len(flat)} rows):")
    print(comparison_table(table, names))

    rows = by_task(flat)
    cal, tasks, oof = fit_all(rows, label_bias=args.label_bias, min_rows=args.min_rows, k=args.folds, alpha=args.alpha)
    report = measure(cal, rows, oof)
    print(f"\nper task on these rows (calibrated = out of fold, {args.folds} folds; set coverage >= "
          f"{1 - args.alpha:.0%} by construction: measure it on untouched data with --apply):")
    print(measure_table(report, "oof"))
    doc = {"format": 2, "temperature": cal.temperature, "alpha": args.alpha, "folds": args.folds,
           "min_rows": args.min_rows, "tasks": tasks,
           "fitted_on": f"{results.get('split')} split, datasets {', '.join(names)}: {len(flat)} rows "
                        f"(limit {results.get('limit')}, seed {results.get('seed')}) of {results.get('model')}",
           "source": str(args.results.resolve()),
           **({"sample_temperature": results["decision"]["sample_temperature"]} if results.get("decision") else {}),
           "cross_validated": {name: {"average_weighted_f1": r["average_weighted_f1"],
                                      "weighted_f1": {n: r["datasets"][n]["weighted_f1"] for n in names},
                                      **{k: v for k, v in r["pooled"].items() if k != "n"}}
                               for name, r in table.items()},
           "report": report}
    for task, rule in ((results.get("decision") or {}).get("tasks") or {}).items():  # decision_sweep.py's rules
        tasks.setdefault(task, {})["decision"] = rule
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2))
    own = sorted(cal.task_temperature)
    print(f"\nshared temperature {cal.temperature:.3f}; own temperature for {len(own)} of {len(rows)} tasks; label "
          f"biases for {len(cal.label_bias)}; label-set thresholds for {len(cal.label_set_threshold)}; "
          f"wrote {args.output}")


def apply_main(args) -> None:
    cal = read_calibration(args.apply)
    results, preds = load_predictions(args.on, fitting=False)
    source = json.loads(args.apply.read_text()).get("source")
    if source and Path(source) == args.on.resolve():
        print(f"warning: {args.on} is the run this calibration was fitted on; its numbers are not held out",
              file=sys.stderr)
    rows = by_task([p for v in preds.values() for p in v])
    report = measure(cal, rows)
    print(f"{args.apply} on {args.on} ({results.get('split')} split, {sum(map(len, rows.values()))} rows):")
    print(measure_table(report))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"calibration": str(args.apply), "on": str(args.on),
                                           "split": results.get("split"), "report": report}, indent=2))
        print(f"wrote {args.output}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="?", help="an evaluate.py JSON of a validation run (to fit on)")
    ap.add_argument("--label-bias", action="store_true",
                    help="also consider per-label biases, kept per task where cross-validation shows they help")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                    help="label sets miss the true label for at most this share of posts (default 0.1: 90 %% coverage)")
    ap.add_argument("--folds", type=int, default=2, help="folds per task for the bias decision and the cross-fitting")
    ap.add_argument("--min-rows", type=int, default=20,
                    help="rows a task needs for its own temperature, biases and a label-set threshold")
    ap.add_argument("--apply", type=Path, metavar="CALIBRATION", help="measure this calibration.json on --on RUN")
    ap.add_argument("--on", type=Path, metavar="RUN", help="an evaluate.py JSON of any split, e.g. the untouched part")
    ap.add_argument("--output", type=Path,
                    help="calibration.json to write (fitting; required), or the --apply report as JSON")
    args = ap.parse_args(argv)
    if args.apply or args.on:
        if not (args.apply and args.on) or args.results:
            ap.error("--apply CALIBRATION needs --on RUN, and no positional run (that one is for fitting)")
        return apply_main(args)
    if not args.results or not args.output:
        ap.error("give a validation run and --output calibration.json to fit, or --apply CALIBRATION --on RUN")
    if args.folds < 2 or not 0 < args.alpha < 1 or args.min_rows < 2 * args.folds:
        ap.error("--folds must be >= 2, --alpha in (0, 1) and --min-rows >= 2 x --folds")
    fit_main(args)


if __name__ == "__main__":
    main()
