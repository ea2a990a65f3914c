"""Evaluate a checkpoint the way the service answers: vLLM, the shared prompt, the label-probability scoring.

    python training/evaluate.py --model ~/.cache/mental-r1/SmolLM2-135M-Instruct \\
        --data-dir ../shared/data/imhi --limit 100 --output runs/eval/base.json
    python training/evaluate.py --model majority --data-dir ../shared/data/imhi --output runs/eval/majority.json

Every row goes through mental_r1.assessor.Assessor (the class behind POST /assess, loaded as the service loads
it: mental_r1/loading.py), with greedy decoding and the calibration shipped with the model (`calibration.json`;
none for a bare checkpoint). The JSON keeps every row's label log-probabilities (no text), so
training/fit_calibration.py can fit a calibration on a validation run without re-running the model. `--model`
may also be a LoRA adapter folder (a run's checkpoint-N): it is merged into the base model first, as the
service would serve it.
`--limit N` takes N rows per dataset after a seeded shuffle (the same rows for every model at equal seed).
`--model majority` is the majority-class baseline (the most frequent gold label of the evaluated rows).
When the model's calibration has conformal thresholds, the results and the table add each dataset's label-set
coverage (the share of rows whose label set holds the gold label) and mean set size, over its rows of tasks
with a threshold.
Writes the JSON results, `<output stem>_f1.png` and `<output stem>_reliability.png`, and prints a table.
Datasets without training data (CAMS, loneliness, t-sid in IMHI) are averaged apart as generalisation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

from mental_r1.calibration import Calibration, load_calibration
from mental_r1.contract import ends_sentence
from mental_r1.data import DataError, Example, list_datasets, load_split
from training.eval_report import (
    Prediction,
    majority_predictions,
    markdown_table,
    plot,
    results_report,
)


def select(examples: list[Example], limit: int | None, seed: int) -> dict[str, list[Example]]:
    by_ds: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_ds[ex.dataset].append(ex)
    for name, rows in by_ds.items():
        random.Random(f"{seed}-{name}").shuffle(rows)
        by_ds[name] = rows[:limit] if limit else rows
    return dict(by_ds)


async def predict(model: str, calibration: Calibration, rows: dict[str, list[Example]], max_tokens: int,
                  concurrency: int, kv_cache_gib: float) -> dict[str, list[Prediction]]:
    from tqdm import tqdm

    from mental_r1.assessor import GenerationOptions
    from mental_r1.engine import EngineLimits
    from mental_r1.loading import load_assessor

    assessor = load_assessor(model, EngineLimits(kv_cache_gib=kv_cache_gib, max_num_seqs=concurrency),
                             calibration=calibration)
    opts = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=sum(len(v) for v in rows.values()), desc="assessing", unit="post")

    async def one(ex: Example) -> Prediction:
        async with gate:
            a = await assessor.assess(ex.text, ex.task, opts)
        bar.update()
        sets = tuple(a.label_set) if ex.task.id in calibration.label_set_threshold else None
        shown = [st.text for st in a.stages if st.text and st.name != "mental_state"]
        return Prediction(ex.dataset, ex.label, a.label, a.confidence, a.format_valid, ex.task.id, a.label_logprobs,
                          sets, stages_whole=all(ends_sentence(t) for t in shown) if shown else None)

    try:
        flat = [ex for v in rows.values() for ex in v]
        preds = await asyncio.gather(*(one(ex) for ex in flat))
    finally:
        bar.close()
        assessor.engine.shutdown()
    out: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        out[p.dataset].append(p)
    return out


def merged_adapter(adapter: Path, work_dir: Path) -> Path:
    """A LoRA adapter (e.g. a run's checkpoint-N) merged into the base model, as the service would serve it:
    written once, atomically (mental_r1.publish), to WORK_DIR/merged-<adapter name>-<hash> and reused."""
    from mental_r1.base_model import ensure_base_model
    from mental_r1.default_model import adapter_sha256, merge_adapter
    from mental_r1.publish import publish_folder

    target = work_dir / f"merged-{adapter.name}-{adapter_sha256(adapter)[:12]}"
    if not (target / "config.json").exists():
        publish_folder(target, lambda tmp: merge_adapter(ensure_base_model(), adapter, tmp))
    return target


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True,
                    help="checkpoint folder, a LoRA adapter folder (merged into the base model), or 'majority'")
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--datasets", default=None, help="comma-separated; default: every dataset of the split")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="rows per dataset (seeded shuffle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=384, help="reasoning budget per assessment; 0 = no "
                    "reasoning: the label is scored at once, at an empty reasoning's commit point (the direct decision)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--kv-cache-gib", type=float, default=2.0)
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    # SIGTERM → SystemExit, so the engine's worker processes are shut down instead of orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        wanted = args.datasets.split(",") if args.datasets else None
        rows = select(load_split(args.data_dir, args.split, wanted), args.limit, args.seed)
        trained = set(list_datasets(args.data_dir, "train"))
    except DataError as e:
        sys.exit(f"error: {e}")
    model = args.model
    if model != "majority" and (Path(model) / "adapter_config.json").exists():
        model = str(merged_adapter(Path(model), args.output.parent))
    elif model != "majority" and not (Path(model) / "config.json").exists():
        sys.exit(f"error: {model} is not a checkpoint folder (no config.json) nor a LoRA adapter (no "
                 "adapter_config.json); pass a folder written by training/run_sft.py or run_crpo.py, the base "
                 "model (python -m mental_r1.base_model), or 'majority'")

    calibration = Calibration() if model == "majority" else load_calibration(model)
    t0 = time.perf_counter()
    if model == "majority":
        preds = {name: majority_predictions(name, [ex.label for ex in v]) for name, v in rows.items()}
    else:
        preds = asyncio.run(predict(model, calibration, rows, args.max_tokens, args.concurrency, args.kv_cache_gib))
    wall = round(time.perf_counter() - t0, 1)
    results = results_report(preds, {n: v[0].task.label_names for n, v in rows.items()},
                             generalisation=[n for n in rows if n not in trained])
    results["pooled"]["temperature"] = calibration.temperature
    results.update(model=str(args.model), split=args.split, limit=args.limit, seed=args.seed,
                   max_tokens=args.max_tokens, wall_time_s=wall,
                   **({"decision": {"sample_temperature": calibration.sample_temperature,
                                    "tasks": {t: r.to_json() for t, r in sorted(calibration.decision.items())}}}
                      if calibration.decision else {}),
                   predictions=[{"dataset": p.dataset, "task": p.task, "gold": p.gold, "label": p.label,
                                 "format_valid": p.format_valid, "label_logprobs": p.label_logprobs,
                                 "label_set": None if p.label_set is None else list(p.label_set)}
                                for v in preds.values() for p in v])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    charts = plot(results, args.output.with_suffix(""))
    print(markdown_table(results))
    pooled = results["pooled"]
    print(f"\npooled over {pooled['n']} rows at temperature {calibration.temperature:.3f}: accuracy {pooled['accuracy']:.3f}, "
          f"mean confidence {pooled['mean_confidence']:.3f}, ECE {pooled['ece']:.3f}, AUROC {pooled['auroc']}"
          + (f"; label sets cover {100 * pooled['label_set_coverage']:.1f} % of {pooled['label_set_n']} rows, "
             f"mean size {pooled['mean_label_set_size']:.2f}" if "label_set_coverage" in pooled else ""))
    print(f"\nwrote {args.output} and {', '.join(str(c) for c in charts)}")


if __name__ == "__main__":
    main()
