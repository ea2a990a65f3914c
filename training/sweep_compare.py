"""Two models' decision sweeps on the same validation rows, side by side, with paired bootstrap intervals: the
measurement behind "ship only on a validation gain".

    python -m training.sweep_compare docs/results/v2/val_rules_v2_2_candidates.json \\
        runs/eval/val_rules_v2_3_candidates.json --names 2.2.0,v2.3 --f1-tolerance 1 \\
        --output runs/eval/compare_v2_2_v2_3.md

Each file is a `training/decision_sweep.py` `_candidates.json` (the scores of every rule's inputs per row, no model
needed). Both must hold the same rows in the same order (decision_sweep's seeded selection with the same
--split/--limit/--seed): checked by dataset, task and gold label row by row.

Per dataset and on average over datasets, for model A, model B and B − A:
- `greedy` (the greedy reasoning decides), `direct` (the direct decision) and `rules (mean)` (the mean over the
  sweep's grid): no selection on these rows;
- `chosen`: each model's rule chosen on these same rows by decision_sweep.choose (the served decision), so
  optimistic for both by the selection; the interval does not re-choose.
The interval is a percentile interval of a paired bootstrap: rows are resampled within each dataset (the same draw
for both models), the weighted F1 of both recomputed on the draw, and for the average the per-dataset differences
of one draw are averaged. It measures the noise of which rows were drawn, not of which model was trained.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mental_r1.decision import DecisionRule
from mental_r1.metrics import weighted_f1
from training.decision_sweep import apply_rule, choose, grid, prediction, sweep

GREEDY, DIRECT = DecisionRule(0.0, 0), DecisionRule(1.0, 0)


def paired_bootstrap(gold: dict[str, Sequence[str]], pred_a: dict[str, Sequence[str]],
                     pred_b: dict[str, Sequence[str]], draws: int = 1000, seed: int = 0,
                     level: float = 0.9) -> dict[str, dict[str, float]]:
    """Per dataset and for "average" (the mean over datasets): B − A in weighted F1 on all rows (`delta`) and the
    `level` percentile interval (`lo`, `hi`) of that difference over `draws` paired resamples of the rows (within
    each dataset, the same indices for A and B)."""
    if set(gold) != set(pred_a) or set(gold) != set(pred_b):
        raise ValueError("gold, pred_a and pred_b must name the same datasets")
    for ds, g in gold.items():
        if not (len(g) == len(pred_a[ds]) == len(pred_b[ds]) > 0):
            raise ValueError(f"{ds}: gold and predictions differ in length (or are empty)")
    rng = random.Random(seed)
    diffs: dict[str, list[float]] = {ds: [] for ds in gold}
    for _ in range(draws):
        for ds, g in gold.items():
            idx = [rng.randrange(len(g)) for _ in g]
            gs = [g[i] for i in idx]
            diffs[ds].append(weighted_f1(gs, [pred_b[ds][i] for i in idx]) -
                             weighted_f1(gs, [pred_a[ds][i] for i in idx]))
    average = [statistics.fmean(diffs[ds][k] for ds in gold) for k in range(draws)]

    def interval(values: list[float]) -> tuple[float, float]:
        s = sorted(values)
        tail = (1 - level) / 2
        return s[round(tail * (len(s) - 1))], s[round((1 - tail) * (len(s) - 1))]

    out = {}
    for ds, g in gold.items():
        lo, hi = interval(diffs[ds])
        out[ds] = {"delta": weighted_f1(g, pred_b[ds]) - weighted_f1(g, pred_a[ds]), "lo": lo, "hi": hi}
    lo, hi = interval(average)
    out["average"] = {"delta": statistics.fmean(out[ds]["delta"] for ds in gold), "lo": lo, "hi": hi}
    return out


def check_same_rows(a: list[dict], b: list[dict]) -> None:
    if len(a) != len(b):
        raise ValueError(f"the files hold {len(a)} and {len(b)} rows: not the same selection")
    for i, (x, y) in enumerate(zip(a, b)):
        if (x["dataset"], x["task"], x["gold"]) != (y["dataset"], y["task"], y["gold"]):
            raise ValueError(f"row {i} differs ({x['dataset']}/{x['task']}/{x['gold']} vs "
                             f"{y['dataset']}/{y['task']}/{y['gold']}): not the same selection")


def labels(rows: list[dict], rule_of: Callable[[str], DecisionRule]) -> dict[str, list[str]]:
    """Each row's label (decision_sweep.prediction) under its dataset's rule, grouped by dataset."""
    out: dict[str, list[str]] = {}
    for r in rows:
        lp, _ = apply_rule(rule_of(r["dataset"]), r)
        out.setdefault(r["dataset"], []).append(prediction(r, lp).label)
    return out


def compare(rows_a: list[dict], rows_b: list[dict], samples: int, min_agreement: float, min_gain: float,
            f1_tolerance: float, draws: int, seed: int) -> dict:
    check_same_rows(rows_a, rows_b)
    gold: dict[str, list[str]] = {}
    for r in rows_a:
        gold.setdefault(r["dataset"], []).append(r["gold"])
    rules = grid(samples)
    tables = [sweep(rows, rules) for rows in (rows_a, rows_b)]
    chosen = [choose(t, min_agreement, min_gain, f1_tolerance) for t in tables]
    out: dict = {"rows": {ds: len(g) for ds, g in gold.items()},
                 "chosen": [{ds: r.to_json() for ds, r in c.items()} for c in chosen], "decisions": {}}
    decisions: dict[str, list[Callable[[str], DecisionRule]]] = {  # per model: dataset → rule
        "greedy": [lambda ds: GREEDY] * 2, "direct": [lambda ds: DIRECT] * 2, "chosen": [c.__getitem__ for c in chosen]}
    for name, rule_of in decisions.items():
        preds = [labels(rows, rule_of[m]) for m, rows in enumerate((rows_a, rows_b))]
        boot = paired_bootstrap(gold, preds[0], preds[1], draws, seed)
        f1 = [{ds: weighted_f1(gold[ds], p[ds]) for ds in gold} for p in preds]
        for f in f1:
            f["average"] = statistics.fmean(f[ds] for ds in gold)
        out["decisions"][name] = {ds: {"a": f1[0][ds], "b": f1[1][ds], **boot[ds]} for ds in boot}
    mean = [{ds: statistics.fmean(e["weighted_f1"] for e in t[ds]) for ds in t} for t in tables]
    for m in mean:
        m["average"] = statistics.fmean(m.values())
    out["decisions"]["rules (mean)"] = {ds: {"a": mean[0][ds], "b": mean[1][ds], "delta": mean[1][ds] - mean[0][ds]}
                                        for ds in mean[0]}
    return out


def markdown(result: dict, names: Sequence[str]) -> str:
    a, b = names
    lines = [f"| decision | dataset | n | {a} | {b} | {b} − {a} | 90 % interval |", "|---|---|---:|---:|---:|---:|---|"]
    for name, per in result["decisions"].items():
        for ds, e in per.items():
            n = result["rows"].get(ds, sum(result["rows"].values()))
            ci = f"[{e['lo']:+.1f}, {e['hi']:+.1f}]" if "lo" in e else ""
            bold = "**" if ds == "average" else ""
            lines.append(f"| {name} | {bold}{ds}{bold} | {n} | {e['a']:.1f} | {e['b']:.1f} | "
                         f"{bold}{e['delta']:+.1f}{bold} | {ci} |")
    lines += ["", f"| dataset | rule chosen for {a} (w, samples) | for {b} |", "|---|---|---|"]
    for ds in result["rows"]:
        ra, rb = (c[ds] for c in result["chosen"])
        lines.append(f"| {ds} | {ra['direct_weight']}, {ra['samples']} | {rb['direct_weight']}, {rb['samples']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="model A's decision_sweep _candidates.json (the baseline)")
    ap.add_argument("b", type=Path, help="model B's, on the same rows")
    ap.add_argument("--names", default="A,B", help="two names for the table, comma-separated")
    ap.add_argument("--min-agreement", type=float, default=0.9, help="as decision_sweep.py")
    ap.add_argument("--min-gain", type=float, default=1.0, help="as decision_sweep.py")
    ap.add_argument("--f1-tolerance", type=float, default=0.0, help="as decision_sweep.py")
    ap.add_argument("--draws", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, help="write the table here (and the numbers beside it as .json)")
    args = ap.parse_args(argv)
    names = args.names.split(",")
    if len(names) != 2:
        ap.error("--names takes two names, e.g. --names 2.2.0,2.3.0")
    try:
        docs = [json.loads(p.read_text()) for p in (args.a, args.b)]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {e}: give two decision_sweep.py _candidates.json files")
    if not all(isinstance(d, dict) and "rows" in d for d in docs):
        sys.exit("error: a file holds no 'rows': give the two _candidates.json files decision_sweep.py writes "
                 "(not its _sweep.json or --output)")
    if docs[0].get("samples") != docs[1].get("samples"):
        sys.exit(f"error: the sweeps sampled {docs[0].get('samples')} and {docs[1].get('samples')} reasonings a row; "
                 "compare sweeps run with the same --samples")
    try:
        result = compare(docs[0]["rows"], docs[1]["rows"], docs[0]["samples"], args.min_agreement, args.min_gain,
                         args.f1_tolerance, args.draws, args.seed)
    except ValueError as e:
        sys.exit(f"error: {e}")
    md = markdown(result, names)
    print(md)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(md + "\n")
        args.output.with_suffix(".json").write_text(json.dumps({"names": names, "a": str(args.a), "b": str(args.b),
                                                                **result}, indent=2))


if __name__ == "__main__":
    main()
