"""Run records: every Trainer log line appended to `metrics.jsonl`, a PNG of per-stage entropy, rewards and
decisions, and a table of a run so far (window means of the training rows, then every validation):

    python -m training.run_log runs/crpo_v2/metrics.jsonl [--window 10]

Rows: one per logged training step (TRL's metrics: loss, reward, rewards/<func>/mean, frac_reward_zero_std,
kl with beta > 0, clip ratios; ours: crpo/entropy/<stage>, crpo/stage_term, crpo/skipped_step,
crpo/binary/{answer_yes,gold_yes,p_yes}, crpo/reward/<dataset>), and one per validation (val/...; no "loss").

On resume the JSONL is cut back to the resumed step, so steps re-run after a kill are not counted twice.
Only numbers are written (no posts, prompts or completions).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from transformers import TrainerCallback

from mental_r1.contract import STAGE_NAMES


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    return rows


class JsonlMetricsCallback(TrainerCallback):
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= state.global_step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch}
        row.update({k: v for k, v in logs.items() if isinstance(v, int | float) or v is None})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def final_metrics(rows: list[dict], last: int = 5) -> dict[str, float]:
    """Mean of each numeric metric over the last `last` logged training steps."""
    steps = [r for r in rows if "loss" in r or "reward" in r][-last:]
    keys = sorted({k for r in steps for k in r if k not in ("step", "epoch")})
    out = {}
    for k in keys:
        vals = [r[k] for r in steps if isinstance(r.get(k), int | float) and not math.isnan(r[k])]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


def plot_metrics(jsonl: str | Path, png: str | Path, title: str = "") -> Path:
    """Three panels over steps: per-stage entropy (crpo/entropy/<stage>), rewards (total, format, the decision
    reward), and decisions: the yes/no rollouts' "yes" fraction (answers, P(yes) at the commit point) beside
    the gold fraction, and validation (average weighted F1 / 100, predicted "yes" fraction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(jsonl)
    fig, (ax_h, ax_r, ax_d) = plt.subplots(1, 3, figsize=(16, 4))

    def curve(ax, key, label, scale=1.0, **style):
        pts = [(r["step"], r[key] * scale) for r in rows if isinstance(r.get(key), int | float)]
        if pts:
            ax.plot(*zip(*pts), label=label, **style)

    for name in STAGE_NAMES:
        curve(ax_h, f"crpo/entropy/{name}", name, marker=".")
    ax_h.set(xlabel="step", ylabel="mean token entropy (nats)", title="entropy per appraisal stage")
    for key, label in (("reward", "total"), ("rewards/format_reward/mean", "format"),
                       ("rewards/accuracy/mean", "answer match"), ("rewards/label_prob/mean", "P(gold) at commit"),
                       ("rewards/label_logprob/mean", "log P(gold) at commit")):
        curve(ax_r, key, label, marker=".")
    ax_r.set(xlabel="step", ylabel="mean reward", title="rewards")
    curve(ax_d, "crpo/binary/answer_yes", "rollout answers: yes", marker=".", lw=0.8)
    curve(ax_d, "crpo/binary/p_yes", "rollout P(yes) at commit", marker=".", lw=0.8)
    curve(ax_d, "crpo/binary/gold_yes", "rollout gold: yes", ls=":", lw=0.8)
    curve(ax_d, "val/binary/pred_yes", "validation: predicted yes", marker="o", lw=1.6)
    curve(ax_d, "val/binary/gold_yes", "validation gold: yes", ls="--", lw=1.2)
    curve(ax_d, "val/avg_weighted_f1", "validation avg weighted F1 / 100", scale=0.01, marker="s", lw=1.6)
    ax_d.set(xlabel="step", ylabel="fraction", title="decisions (yes/no tasks) and validation", ylim=(-0.02, 1.02))
    for ax in (ax_h, ax_r, ax_d):
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return Path(png)


SUMMARY_COLUMNS = (  # (metric, header) of the training-window table; a column shows only if the run logged it
    ("crpo/p_gold", "P(gold)"), ("crpo/binary/p_yes", "p_yes"), ("crpo/binary/gold_yes", "gold_yes"),
    ("rewards/format_reward/mean", "format"), ("kl", "KL"), ("frac_reward_zero_std", "tied"),
    ("crpo/within_group_share", "within"), ("crpo/entropy/primary_appraisal", "H primary"),
    ("crpo/skipped_step", "skipped"), ("step_time", "step s"),
)


def summarize(rows: list[dict], window: int = 10) -> str:
    """Markdown tables of a run: the training rows' means per `window` steps (step time: the median), then one
    line per validation (average and per-dataset weighted F1, the predicted "yes" share against the gold one)."""
    train = [r for r in rows if "loss" in r or "reward" in r]
    cols = [(k, h) for k, h in SUMMARY_COLUMNS if any(k in r for r in train)]
    lines = ["| steps | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    if not train:
        lines = ["no training step logged yet"]
    for start in range(0, len(train), window):
        chunk = train[start:start + window]
        cells = []
        for key, _ in cols:
            vals = sorted(r[key] for r in chunk if isinstance(r.get(key), int | float) and not math.isnan(r[key]))
            stat = (vals[len(vals) // 2] if key == "step_time" else sum(vals) / len(vals)) if vals else None
            cells.append("" if stat is None else f"{stat:.1f}" if key == "step_time" else f"{stat:.3f}")
        lines.append(f"| {chunk[0]['step']}-{chunk[-1]['step']} | " + " | ".join(cells) + " |")
    vals = [r for r in rows if "val/avg_weighted_f1" in r]
    if vals:
        names = sorted({k.split("/", 2)[2] for r in vals for k in r if k.startswith("val/weighted_f1/")})
        ranked = any("val/avg_auroc" in r for r in vals)  # runs before 2026-12-07 logged no AUROC
        lines += ["", "| validation step | average | pred yes (gold) | " + ("AUROC | " if ranked else "")
                  + " | ".join(names) + " |", "|---:|---:|---:|" + ("---:|" if ranked else "") + "---:|" * len(names)]
        for r in vals:
            yes = f"{r.get('val/binary/pred_yes', float('nan')):.3f} ({r.get('val/binary/gold_yes', float('nan')):.3f})"
            auroc = f"{r.get('val/avg_auroc', float('nan')):.3f} | " if ranked else ""
            lines.append(f"| {r['step']} | {r['val/avg_weighted_f1']:.2f} | {yes} | {auroc}"
                         + " | ".join(f"{r.get(f'val/weighted_f1/{n}', float('nan')):.1f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.run_log", description=summarize.__doc__)
    parser.add_argument("metrics", type=Path, help="a run's metrics.jsonl")
    parser.add_argument("--window", type=int, default=10, help="training steps per row (default 10)")
    args = parser.parse_args(argv)
    if not args.metrics.is_file():
        parser.error(f"{args.metrics} is not a file: pass a run's metrics.jsonl (runs/NAME/metrics.jsonl)")
    if args.window < 1:
        parser.error("--window must be at least 1")
    print(summarize(read_jsonl(args.metrics), args.window))


if __name__ == "__main__":
    main()
