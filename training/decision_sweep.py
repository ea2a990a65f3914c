"""Choose each dataset's decision rule (mental_r1/decision.py) on validation: direct vs reasoning, and how many
sampled reasonings.

    python training/decision_sweep.py --model MODEL --data-dir ../shared/data/imhi --split val --limit 150 \\
        --samples 3 --output runs/eval/val_v2_rules.json
    python training/decision_sweep.py --from-candidates runs/eval/val_v2_rules_candidates.json \\
        --output runs/eval/val_v2_rules.json                      # re-choose without the model
    python training/fit_calibration.py runs/eval/val_v2_rules.json --min-rows 15 --output calibration.json

One pass through the model per row (mental_r1.assessor.Assessor.candidates, the service's own requests): the
direct scores, the greedy reasoning's and `--samples` sampled reasonings' commit-point scores, saved as
`<output stem>_candidates.json` (scores only, no text). Then, without the model, every rule of the grid
(direct weight × samples) is applied to every row; per dataset the rule with the best weighted F1 is chosen
among those whose shown reasoning agrees with the label on >= `--min-agreement` of rows; sampled reasonings
only when they gain `--min-gain` F1 points over the best rule without (they multiply the generation; ties:
fewer samples, then the smaller direct weight; with `--f1-tolerance` > 0, rules within that many points tie and the
best AUROC of the raw confidence wins). Irf and MultiWD ask several questions of the same posts; the rule
is chosen per dataset, so a task with 20 rows does not get a rule of its own.

Writes `--output` in evaluate.py's format (the chosen rules' label log-probabilities, T = 1, and a `decision`
entry: fit_calibration.py fits on those log-probabilities and copies the rules into calibration.json),
`<output stem>_sweep.md` / `.json` (F1, raw-confidence AUROC and agreement per dataset and rule).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from mental_r1.calibration import DEFAULT_SAMPLE_TEMPERATURE, Calibration
from mental_r1.contract import COMMIT_TAG
from mental_r1.data import DataError, list_datasets, load_split
from mental_r1.decision import DecisionRule, decide
from mental_r1.metrics import auroc, weighted_f1
from training.eval_report import Prediction, markdown_table, results_report
from training.evaluate import merged_adapter, select

DIRECT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def grid(max_samples: int) -> list[DecisionRule]:
    samples = sorted({0, max_samples})
    return [DecisionRule(w, k) for k in samples for w in DIRECT_WEIGHTS]


async def collect(model: str, rows, samples: int, sample_temperature: float, max_tokens: int, concurrency: int,
                  kv_cache_gib: float) -> list[dict]:
    from tqdm import tqdm

    from mental_r1.assessor import GenerationOptions
    from mental_r1.engine import EngineLimits
    from mental_r1.loading import load_assessor

    assessor = load_assessor(model, EngineLimits(kv_cache_gib=kv_cache_gib, max_num_seqs=concurrency * (samples + 2)),
                             calibration=Calibration(sample_temperature=sample_temperature))
    opts = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
    gate = asyncio.Semaphore(concurrency)
    flat = [ex for v in rows.values() for ex in v]
    bar = tqdm(total=len(flat), desc="candidates", unit="post")

    async def one(ex) -> dict:
        async with gate:
            c = await assessor.candidates(ex.text, ex.task, opts, samples=samples, direct=True)
        bar.update()
        return {"dataset": ex.dataset, "task": ex.task.id, "gold": ex.label, "direct": c.direct,
                "reasonings": [{"scores": s, "tokens": n, "reached": g.endswith(COMMIT_TAG)}
                               for g, n, s in c.reasonings]}

    try:
        return await asyncio.gather(*(one(ex) for ex in flat))
    finally:
        bar.close()
        assessor.engine.shutdown()


def apply_rule(rule: DecisionRule, row: dict) -> tuple[dict[str, float], bool]:
    d = decide(rule, row["direct"], [r["scores"] for r in row["reasonings"]])
    return d.logprobs, d.agrees


def prediction(row: dict, logprobs: dict[str, float]) -> Prediction:
    label = max(logprobs, key=logprobs.get)
    return Prediction(row["dataset"], row["gold"], label, math.exp(logprobs[label]), True, row["task"], logprobs)


def sweep(rows: list[dict], rules: list[DecisionRule]) -> dict[str, list[dict]]:
    """Per dataset, per rule: weighted F1, AUROC of the (uncalibrated) confidence, agreement rate."""
    out: dict[str, list[dict]] = {}
    for ds in sorted({r["dataset"] for r in rows}):
        mine = [r for r in rows if r["dataset"] == ds]
        for rule in rules:
            applied = [apply_rule(rule, r) for r in mine]
            preds = [prediction(r, lp) for r, (lp, _) in zip(mine, applied)]
            out.setdefault(ds, []).append({
                **rule.to_json(), "n": len(mine),
                "weighted_f1": weighted_f1([p.gold for p in preds], [p.label for p in preds]),
                "auroc": auroc([p.confidence for p in preds], [p.label == p.gold for p in preds]),
                "agreement": sum(a for _, a in applied) / len(applied)})
    return out


def choose(table: dict[str, list[dict]], min_agreement: float, min_gain: float = 0.0,
           f1_tolerance: float = 0.0) -> dict[str, DecisionRule]:
    """Per dataset, the eligible rule (agreement >= min_agreement; all rules if none is) with the best weighted F1;
    a rule with sampled reasonings (2-4x the generation) only when it beats the best rule without by `min_gain`
    F1 points. Ties: fewer samples, then the smaller direct weight. With `f1_tolerance` > 0, the rules within that
    many F1 points of the one so chosen (and with no more samples) count as ties, and the tie goes to the best
    AUROC of the raw confidence: the same decisions, to within validation noise, with a confidence that ranks
    right above wrong answers better (issue 18)."""
    def key(e):
        return round(e["weighted_f1"], 6), -e["samples"], -e["direct_weight"]

    chosen = {}
    for ds, entries in table.items():
        ok = [e for e in entries if e["agreement"] >= min_agreement] or entries
        best = max(ok, key=key)
        cheap = [e for e in ok if e["samples"] == 0]
        if best["samples"] and cheap and best["weighted_f1"] < max(cheap, key=key)["weighted_f1"] + min_gain:
            best = max(cheap, key=key)
        if f1_tolerance > 0:
            near = [e for e in ok if e["samples"] <= best["samples"]
                    and e["weighted_f1"] >= best["weighted_f1"] - f1_tolerance and e["auroc"] is not None]
            if best["auroc"] is not None:  # then `near` holds `best` itself
                best = max(near, key=lambda e: (round(e["auroc"], 6), key(e)))
        chosen[ds] = DecisionRule(best["direct_weight"], best["samples"])
    return chosen


def sweep_markdown(table: dict[str, list[dict]], chosen: dict[str, DecisionRule]) -> str:
    lines = ["| dataset | n | rule (w, samples) | weighted F1 | AUROC (raw) | agreement | chosen |",
             "|---|---:|---|---:|---:|---:|:-:|"]
    for ds, entries in table.items():
        for e in entries:
            mark = "✓" if DecisionRule(e["direct_weight"], e["samples"]) == chosen[ds] else ""
            au = "-" if e["auroc"] is None else f"{e['auroc']:.3f}"
            lines.append(f"| {ds} | {e['n']} | {e['direct_weight']:.2f}, {e['samples']} | {e['weighted_f1']:.1f} | "
                         f"{au} | {e['agreement']:.3f} | {mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint folder or LoRA adapter folder (merged into the base model)")
    ap.add_argument("--from-candidates", type=Path, help="a _candidates.json written before: no model run")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--datasets", default=None, help="comma-separated; default: every dataset of the split")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="rows per dataset (evaluate.py's seeded shuffle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=3, help="sampled reasonings per row besides the greedy one")
    ap.add_argument("--sample-temperature", type=float, default=DEFAULT_SAMPLE_TEMPERATURE)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--min-agreement", type=float, default=0.9,
                    help="a rule is eligible when its shown reasoning leads to its label on this share of rows")
    ap.add_argument("--min-gain", type=float, default=1.0,
                    help="weighted-F1 points a rule with sampled reasonings must gain over the best without")
    ap.add_argument("--f1-tolerance", type=float, default=0.0,
                    help="rules within this many weighted-F1 points of the chosen one (no more samples) tie, and the "
                         "tie goes to the best AUROC of the raw confidence (0: F1 alone)")
    ap.add_argument("--concurrency", type=int, default=16, help="posts in flight (each is 2 + samples requests)")
    ap.add_argument("--kv-cache-gib", type=float, default=3.0)
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stem = args.output.with_suffix("")
    cand_path = Path(f"{stem}_candidates.json")

    if args.from_candidates:
        doc = json.loads(args.from_candidates.read_text())
    else:
        if not (args.model and args.data_dir):
            ap.error("give --model and --data-dir (or --from-candidates FILE)")
        if args.samples < 0 or args.max_tokens < 1:
            ap.error("--samples must be >= 0 and --max-tokens >= 1")
        try:
            rows = select(load_split(args.data_dir, args.split, args.datasets.split(",") if args.datasets else None),
                          args.limit, args.seed)
            trained = sorted(set(list_datasets(args.data_dir, "train")))
        except DataError as e:
            sys.exit(f"error: {e}")
        model = args.model
        if (Path(model) / "adapter_config.json").exists():
            model = str(merged_adapter(Path(model), args.output.parent))
        elif not (Path(model) / "config.json").exists():
            sys.exit(f"error: {model} is not a checkpoint folder (no config.json) nor a LoRA adapter")
        t0 = time.perf_counter()
        collected = asyncio.run(collect(model, rows, args.samples, args.sample_temperature, args.max_tokens,
                                        args.concurrency, args.kv_cache_gib))
        doc = {"model": args.model, "split": args.split, "limit": args.limit, "seed": args.seed,
               "samples": args.samples, "sample_temperature": args.sample_temperature, "max_tokens": args.max_tokens,
               "trained_datasets": trained, "wall_time_s": round(time.perf_counter() - t0, 1), "rows": collected}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        cand_path.write_text(json.dumps(doc))
        print(f"wrote {cand_path} ({len(collected)} rows, {doc['wall_time_s']} s)")

    rows = doc["rows"]
    table = sweep(rows, grid(doc["samples"]))
    chosen = choose(table, args.min_agreement, args.min_gain, args.f1_tolerance)
    md = sweep_markdown(table, chosen)
    Path(f"{stem}_sweep.md").write_text(md + "\n")
    Path(f"{stem}_sweep.json").write_text(json.dumps(
        {"min_agreement": args.min_agreement, "min_gain": args.min_gain, "f1_tolerance": args.f1_tolerance,
         "chosen": {d: r.to_json() for d, r in chosen.items()}, "table": table},
        indent=2))
    print(md)

    preds: dict[str, list[Prediction]] = {}
    labels: dict[str, list[str]] = {}
    for r in rows:
        lp, _ = apply_rule(chosen[r["dataset"]], r)
        preds.setdefault(r["dataset"], []).append(prediction(r, lp))
        labels.setdefault(r["dataset"], list(r["direct"]))
    results = results_report(preds, labels,
                             generalisation=[d for d in preds if d not in set(doc.get("trained_datasets", []))])
    tasks = {r["task"]: chosen[r["dataset"]].to_json() for r in rows}
    results.update(model=doc["model"], split=doc["split"], limit=doc["limit"], seed=doc["seed"],
                   max_tokens=doc["max_tokens"],
                   decision={"sample_temperature": doc["sample_temperature"], "tasks": dict(sorted(tasks.items()))},
                   predictions=[{"dataset": p.dataset, "task": p.task, "gold": p.gold, "label": p.label,
                                 "format_valid": p.format_valid, "label_logprobs": p.label_logprobs, "label_set": None}
                                for v in preds.values() for p in v])
    args.output.write_text(json.dumps(results, indent=2))
    print()
    print(markdown_table(results))
    print(f"\nwrote {args.output}, {stem}_sweep.md/.json")


if __name__ == "__main__":
    main()
