"""Run records: every Trainer log line appended to `metrics.jsonl`, and a PNG of per-stage entropy and rewards.

On resume the JSONL is cut back to the resumed step, so steps re-run after a kill are not counted twice.
Only numbers are written (no posts, prompts or completions).
"""

from __future__ import annotations

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
    """Two panels over steps: per-stage entropy (crpo/entropy/<stage>) and rewards (total, format, accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_jsonl(jsonl) if "reward" in r or any(k.startswith("crpo/") for k in r)]
    fig, (ax_h, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for name in STAGE_NAMES:
        pts = [(r["step"], r[f"crpo/entropy/{name}"]) for r in rows if r.get(f"crpo/entropy/{name}") is not None]
        if pts:
            ax_h.plot(*zip(*pts), marker=".", label=name)
    ax_h.set(xlabel="step", ylabel="mean token entropy (nats)", title="entropy per appraisal stage")
    for key, label in (("reward", "total"), ("rewards/format_reward/mean", "format"),
                       ("rewards/accuracy/mean", "accuracy")):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax_r.plot(*zip(*pts), marker=".", label=label)
    ax_r.set(xlabel="step", ylabel="mean reward", title="rewards")
    for ax in (ax_h, ax_r):
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return Path(png)

