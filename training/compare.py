"""CRPO against GRPO, DAPO and Dr. GRPO at equal budget: train each from the same start, evaluate each alike.

    python training/compare.py --config training/configs/crpo_smollm2_v2.yaml --max-steps 300 \\
        --runs crpo,grpo,dapo,dr_grpo,crpo_flat --eval-limit 50 --out runs/compare_v2 --adapter P --seed 42
    python training/compare.py ... --split val --eval-limit 40 --report-only   # the validation table (eval/val/)
    python training/compare.py ... --report-only --reference sft_start=docs/results/test_v1_l100.json  # table
    python training/compare.py --history crpo_s42=runs/crpo_s42 --history grpo_s42=runs/grpo_s42 \
        --out docs/results/v2/compare   # runs made elsewhere: their in-run validation, side by side

Every run is `training/run_crpo.py --config CONFIG --algorithm A --max_steps N` with nothing else changed
(same start adapter, prompts, seed, generations, learning rate, rollout engine), then
`training/evaluate.py --model RUN/final --split test --limit L`: the same rows for every model.
Resumable, one heavy job at a time: a run with `final/` is not retrained, an interrupted one resumes from
its last complete checkpoint, an evaluation whose JSON exists is not redone.

Unknown options (`--adapter P`, `--seed 43`, ...) are passed to every run. With the v2 recipe every run
keeps its best validation's weights in final/ (`selected step` in the table). Clipping never fires with
`num_iterations` 1 (the importance ratio is 1: clip_ratio 0 in every log), so DAPO's clip-higher is inert
here; DAPO differs from GRPO by its loss normaliser and overlong filtering only (the table says so).

Labels are compared without calibration (argmax of the label log-probabilities): the shipped calibration
was fitted for the SFT model on validation data, and refitting one per run would need a validation run
each. `--reference NAME=JSON` (an evaluate.py JSON on a superset of the rows, e.g. the v1 test run as the
SFT start) adds a row, uncalibrated in the same way; its rows are checked to be the same.
Writes OUT/comparison.json, OUT/comparison.md and OUT/stage_entropy.png (per-stage entropy per step).

`--history NAME=RUN_DIR` (repeatable) compares runs already trained, by the validation each ran (run_crpo.py's
`eval_every`: the same val rows for runs of one config): per validated step the average weighted F1, the
average AUROC of the raw confidence and the share of "yes" answers on the binary tasks against the gold share,
then per dataset at each run's last and best step. Writes OUT/validation.md, OUT/validation.json and
OUT/stage_entropy.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mental_r1.calibration import Calibration
from mental_r1.contract import STAGE_NAMES
from mental_r1.data import list_datasets
from training.eval_report import Prediction, recalibrated, results_report
from training.run_log import read_jsonl
from training.schedule import PAPER_M

# name → run_crpo.py overrides. The ablation isolates the stage-wise term: the schedule reversed (certain
# early, exploratory late: M → −M) and one coefficient on the same stages, the mean of the schedule there
# (crpo_flat: computed from the config by `run_overrides`).
RUNS: dict[str, list[str]] = {
    "crpo": ["--algorithm", "crpo"],
    "grpo": ["--algorithm", "grpo"],
    "dapo": ["--algorithm", "dapo"],
    "dr_grpo": ["--algorithm", "dr_grpo"],
    "crpo_reversed": ["--algorithm", "crpo", "--stage_beta_m", str(-PAPER_M)],
    "crpo_flat": ["--algorithm", "crpo"],
}
NOTE = ("With num_iterations 1 the importance ratio is 1 and clipping never fires, so DAPO's clip-higher is inert: "
        "DAPO differs from GRPO here by its loss normaliser and overlong filtering only.")


def flat_coefficient(config: str, overrides: list[str] = ()) -> float:
    """The mean of the stage schedule over the stages the term acts on (crpo_flat's single coefficient)."""
    from trl import TrlParser

    from training.config import CRPOConfig, RunArguments

    _, cfg = TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(
        ["--config", config, "--algorithm", "crpo", *overrides])
    active = [b for b, name in zip(cfg.betas, STAGE_NAMES, strict=True) if name in cfg.stage_term_stages]
    return sum(active) / len(active)


def run_overrides(name: str, config: str, overrides: list[str] = ()) -> list[str]:
    if name == "crpo_flat":
        return [*RUNS[name], "--stage_betas", *[f"{flat_coefficient(config, overrides):.6f}"] * len(STAGE_NAMES)]
    return list(RUNS[name])


def eval_path(out: Path, name: str, split: str) -> Path:
    """test results at eval/NAME.json (as before), other splits at eval/SPLIT/NAME.json."""
    return out / "eval" / (f"{name}.json" if split == "test" else f"{split}/{name}.json")
ORDER = ("DR", "dreaddit", "SAD", "MultiWD", "Irf", "CAMS", "loneliness", "t-sid")  # docs/evaluation.md's order
PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


def train(name: str, args) -> Path:
    out = args.out / name
    if (out / "final").is_dir():
        print(f"[compare] {name}: trained already ({out / 'final'})", flush=True)
        return out / "final"
    resume = ["--resume", "true"] if any(out.glob("checkpoint-*")) else []
    cmd = [PY, "training/run_crpo.py", "--config", args.config, "--max_steps", str(args.max_steps),
           "--output_dir", str(out), *run_overrides(name, args.config, args.overrides), *resume, *args.overrides]
    print(f"[compare] {name}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return out / "final"


def evaluate(name: str, args) -> Path:
    result = eval_path(args.out, name, args.split)
    result.parent.mkdir(parents=True, exist_ok=True)
    if result.exists():
        print(f"[compare] {name}: evaluated already ({result})", flush=True)
        return result
    cmd = [PY, "training/evaluate.py", "--model", str(args.out / name / "final"), "--data-dir", str(args.data_dir),
           "--split", args.split, "--limit", str(args.eval_limit), "--seed", "0", "--output", str(result)]
    print(f"[compare] {name}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return result


def uncalibrated(path: Path, limit: int | None = None, unseen: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """An evaluation's results recomputed from its label log-probabilities with no calibration (the first
    `limit` rows of each dataset: evaluate.py's rows at a smaller --limit), and the rows' gold labels."""
    doc = json.loads(path.read_text())
    per_ds: dict[str, list[dict]] = {}
    for row in doc["predictions"]:
        per_ds.setdefault(row["dataset"], []).append(row)
    preds, labels = {}, {}
    for ds, rows in per_ds.items():
        rows = rows[:limit] if limit else rows
        labels[ds] = doc["datasets"][ds]["labels"]
        preds[ds] = recalibrated([Prediction(ds, r["gold"], r["label"], 0.0, r["format_valid"], r["task"],
                                             r["label_logprobs"]) for r in rows], Calibration())
    gold = {ds: [p.gold for p in v] for ds, v in preds.items()}
    return results_report(preds, labels, generalisation=[ds for ds in preds if ds in unseen]), gold


def entropy_figure(runs: dict[str, Path], out: Path) -> Path:
    """OUT/stage_entropy.png: the mean token entropy of each stage per optimizer step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(STAGE_NAMES), figsize=(4 * len(STAGE_NAMES), 3.4), sharex=True)
    for name, run_dir in runs.items():
        rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
        for ax, stage in zip(axes, STAGE_NAMES, strict=True):
            ax.plot([r["step"] for r in rows], [r.get(f"crpo/entropy/{stage}") for r in rows], label=name, lw=1.2)
    for ax, stage in zip(axes, STAGE_NAMES, strict=True):
        ax.set_title(stage.replace("_", " "))
        ax.set_xlabel("optimizer step")
    axes[0].set_ylabel("mean token entropy (nats)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("Per-stage entropy of the rollouts, by run (same start and prompts per seed)")
    fig.tight_layout()
    path = out / "stage_entropy.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def validation_rows(run_dir: Path) -> list[dict]:
    """The run's validations (metrics.jsonl rows with `val/avg_weighted_f1`), by step; the last one per step
    (a resumed run validates its resumed step again)."""
    rows = {r["step"]: r for r in read_jsonl(run_dir / "metrics.jsonl") if "val/avg_weighted_f1" in r}
    if not rows:
        raise SystemExit(f"error: {run_dir / 'metrics.jsonl'} holds no validation; was eval_every > 0?")
    return [rows[k] for k in sorted(rows)]


def history(runs: dict[str, Path], out: Path) -> dict:
    """The `--history` report (see the module docstring); returns what OUT/validation.json holds."""
    doc, lines = {}, ["| run | step | avg F1 | Δ vs step 0 | avg AUROC | avg log P(gold) | yes share (gold) |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
    for name, run_dir in runs.items():
        vals = validation_rows(run_dir)
        start = vals[0]["val/avg_weighted_f1"]
        best = max(vals, key=lambda r: r["val/avg_weighted_f1"])
        datasets = [d for d in ORDER if f"val/weighted_f1/{d}" in vals[0]]
        doc[name] = {"run_dir": str(run_dir), "best_step": best["step"], "steps": [
            {"step": r["step"], "avg_weighted_f1": r["val/avg_weighted_f1"], "avg_auroc": r.get("val/avg_auroc"),
             "avg_log_p_gold": r.get("val/avg_log_p_gold"), "pred_yes": r.get("val/binary/pred_yes"),
             "gold_yes": r.get("val/binary/gold_yes"),
             "weighted_f1": {d: r[f"val/weighted_f1/{d}"] for d in datasets}} for r in vals]}
        for r in vals:
            yes = r.get("val/binary/pred_yes")
            lines.append(f"| {name} | {r['step']} | {r['val/avg_weighted_f1']:.2f} | "
                         f"{r['val/avg_weighted_f1'] - start:+.2f} | {r.get('val/avg_auroc', float('nan')):.3f} | "
                         + ("n/a" if "val/avg_log_p_gold" not in r else f"{r['val/avg_log_p_gold']:.3f}") + " | "
                         + ("" if yes is None else f"{yes:.3f} ({r['val/binary/gold_yes']:.3f})") + " |")
    datasets = [d for d in ORDER if any(d in s["weighted_f1"] for v in doc.values() for s in v["steps"])]
    lines += ["", "| run | step | " + " | ".join(datasets) + " |", "|---|---:|" + "---:|" * len(datasets)]
    for name, v in doc.items():
        shown = {v["steps"][0]["step"], v["best_step"], v["steps"][-1]["step"]}  # start, best, last
        for s in v["steps"]:
            if s["step"] in shown:
                lines.append(f"| {name} | {s['step']}{' (best)' if s['step'] == v['best_step'] else ''} | " +
                             " | ".join(f"{s['weighted_f1'].get(d, float('nan')):.1f}" for d in datasets) + " |")
    md = "\n".join(lines) + ("\n\nIn-run validation (run_crpo.py `eval_every`): greedy reasoning, labels "
                             "uncalibrated, the same val rows for every run of one config. " + NOTE)
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation.md").write_text(md + "\n")
    (out / "validation.json").write_text(json.dumps(doc, indent=2))
    print(md)
    return doc


def report(names: list[str], args) -> dict:
    unseen = tuple(args.unseen)
    table, gold_ref = {}, None
    for name in names:
        path = eval_path(args.out, name, args.split)
        if path.exists():
            table[name], gold = uncalibrated(path, unseen=unseen)
            gold_ref = gold_ref or gold
            assert gold == gold_ref, f"{name} was evaluated on other rows"
    references = {}
    for spec in args.reference:
        name, _, path = spec.partition("=")
        references[name], gold = uncalibrated(Path(path), args.eval_limit, unseen)
        assert gold_ref is None or gold == gold_ref, f"--reference {name} holds other rows than the runs' evaluations"
    table = references | table
    found = list(next(iter(table.values()))["datasets"]) if table else []
    datasets = [d for d in ORDER if d in found] + [d for d in found if d not in ORDER]
    lines = ["| model | " + " | ".join(datasets) + " | avg | trained | unseen | format valid | steps | selected step "
             "| wall (min) |", "|---|" + "---:|" * (len(datasets) + 7)]
    summary = {}
    for name, res in table.items():
        runlog = [r for r in read_jsonl(args.out / name / "metrics.jsonl") if "loss" in r]
        wall = sum(r.get("step_time", 0.0) for r in runlog) / 60
        record = args.out / name / "final" / "mental_r1_run.json"
        selected = json.loads(record.read_text()).get("selected_step") if record.exists() else None
        fmt = sum(d["format_valid_rate"] * d["n"] for d in res["datasets"].values()) / sum(
            d["n"] for d in res["datasets"].values())
        f1 = {ds: res["datasets"][ds]["weighted_f1"] for ds in datasets}
        summary[name] = {"weighted_f1": f1, "average": res["average_weighted_f1"],
                         "trained": res["average_weighted_f1_trained_tasks"],
                         "unseen": res["average_weighted_f1_generalisation"], "format_valid": fmt,
                         "steps": len(runlog), "selected_step": selected, "train_wall_min": round(wall, 1)}
        cell = (lambda v: "" if v is None else f"{v:.1f}")
        lines.append(f"| {name} | " + " | ".join(f"{f1[ds]:.1f}" for ds in datasets) +
                     f" | {cell(res['average_weighted_f1'])} | {cell(res['average_weighted_f1_trained_tasks'])} | "
                     f"{cell(res['average_weighted_f1_generalisation'])} | {100 * fmt:.1f} % | {len(runlog) or ''} | "
                     f"{'' if selected is None else selected} | {f'{wall:.1f}' if runlog else ''} |")
    md = "\n".join(lines) + f"\n\n{args.split} split, {args.eval_limit} rows per dataset, labels uncalibrated. {NOTE}"
    (args.out / "comparison.md").write_text(md + "\n")
    (args.out / "comparison.json").write_text(json.dumps({"rows": summary, "limit": args.eval_limit,
                                                          "split": args.split, "max_steps": args.max_steps,
                                                          "config": args.config}, indent=2))
    print(md)
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="training/configs/crpo_smollm2_v2.yaml")
    ap.add_argument("--runs", default="crpo,grpo,dapo,dr_grpo,crpo_reversed",
                    help=f"comma-separated, from: {', '.join(RUNS)}")
    ap.add_argument("--max-steps", type=int, default=40, help="optimizer steps of every run (equal budget)")
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data/imhi"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--eval-limit", type=int, default=50, help="rows per dataset of every evaluation")
    ap.add_argument("--out", type=Path, default=Path("runs/compare"))
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=EVAL_JSON",
                    help="a row from an evaluate.py JSON on a superset of the rows (e.g. sft_start=..., base=...)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--train-only", action="store_true", help="train every run first, evaluate none")
    ap.add_argument("--history", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="runs already trained: their in-run validation side by side (nothing is run)")
    args, args.overrides = ap.parse_known_args(argv)
    if args.history:
        runs = {}
        for spec in args.history:
            name, sep, run_dir = spec.partition("=")
            if not sep or not (Path(run_dir) / "metrics.jsonl").is_file():
                sys.exit(f"error: --history {spec!r}: give NAME=RUN_DIR, a run_crpo.py output folder with metrics.jsonl")
            runs[name] = Path(run_dir)
        history(runs, args.out)
        print(f"[compare] wrote {args.out / 'validation.md'} and {entropy_figure(runs, args.out)}")
        return
    names = args.runs.split(",")
    args.unseen = [ds for ds in list_datasets(args.data_dir, args.split) if ds not in list_datasets(args.data_dir, "train")]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"error: unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    if not args.report_only:
        for name in names:
            train(name, args)
        if not args.train_only:
            for name in names:
                evaluate(name, args)
    report(names, args)
    figure = entropy_figure({name: args.out / name for name in names}, args.out)
    print(f"[compare] wrote {args.out / 'comparison.md'} and {figure}")


if __name__ == "__main__":
    main()
