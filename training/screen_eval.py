"""Measure the crisis screen on t-sid: recall on "suicide or self-harm tendency" posts and flag rates on
"no mental disorders", "depression" and "PTSD" posts, for the text source, the model source and both.

    python training/screen_eval.py --data-dir ../shared/data/imhi --output runs/eval/screen_v1.json --write-thresholds
    python training/screen_eval.py --data-dir ../shared/data/imhi --text-only --output runs/eval/screen_text.json

Two parts: there is no t-sid training or validation data, so the t-sid test half is split in two by a salted
hash of the post (`part`, about half each): part A is where the lexicon was developed and the model's
thresholds are fitted, part B is only measured. Report part B.
Model source: `--model` (default: the embedded default model, as the service serves it) through vLLM and
the service's own path (mental_r1.assessor.Assessor.risk_probabilities: label scoring without reasoning).
Fit (part A's posts that are the model's validation rows, `mental_r1.data.carved_split`: the rest of part
A trains the model since v2): the thresholds of the two risk tasks (each one of the observed probabilities of
the fitting rows' self-harm posts, or off) that maximise the model source's own recall while its flags on "no mental
disorders" posts stay within what the text source leaves of --max-flag-rate (default 0.08: a margin under
the 10 % target for a part of ~130 such posts), so the whole screen stays within it; ties go to fewer
flags (`fit_thresholds` says why not the whole screen's recall). `--write-thresholds` records them for the
model in mental_r1/screen/thresholds.json (or --thresholds-file), where the service reads them.
A flag is a level other than none (concern or crisis; mental_r1/screen). Writes the JSON (figures, the
thresholds, every row's part, label, text level and probabilities; no text) and `<output stem>.md` (the
markdown table, also printed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mental_r1.data import DataError, carved_split, load_split, screen_part
from mental_r1.metrics import auroc
from mental_r1.screen import overall_level, text_signals
from mental_r1.screen.model import MODEL_SCREEN, THRESHOLDS_FILE, model_key, write_model_screen

RISK = "suicide or self-harm tendency"
OTHERS = ("no mental disorders", "depression", "PTSD")
BUDGET_LABEL = "no mental disorders"
SOURCES = ("text", "model", "text + model")


part = screen_part  # A (develop and fit) / B (report); B is also the model's untouched t-sid part


@dataclass
class Row:
    part: str
    label: str
    text_level: str
    probabilities: dict[str, float] = field(default_factory=dict)  # task id → P(risk label), model source


def model_flag(row: Row, thresholds: dict[str, float | None]) -> bool:
    return any(t is not None and row.probabilities.get(task, -1.0) >= t for task, t in thresholds.items())


def flags(row: Row, source: str, thresholds: dict[str, float | None]) -> bool:
    text = row.text_level != "none"
    if source == "text":
        return text
    if source == "model":
        return model_flag(row, thresholds)
    return text or model_flag(row, thresholds)


def rates(rows: list[Row], source: str, thresholds: dict[str, float | None]) -> dict[str, dict]:
    """Label → {n, flagged, rate} over `rows`."""
    out = {}
    for label in (RISK, *OTHERS):
        sel = [r for r in rows if r.label == label]
        k = sum(flags(r, source, thresholds) for r in sel)
        out[label] = {"n": len(sel), "flagged": k, "rate": round(k / len(sel), 4) if sel else None}
    return out


def fit_thresholds(rows: list[Row], max_flag_rate: float) -> dict[str, float | None]:
    """Thresholds per risk task for the model source, on its own merit: the highest recall of the model
    alone on `rows` whose flags on "no mental disorders" rows stay within the budget the text source leaves
    (max_flag_rate minus the text's own flag rate there), so that the whole screen stays within
    max_flag_rate. Ties: fewer of those flags, then fewer flags overall. Candidates are the self-harm rows'
    probabilities (a threshold between two of them flags the same self-harm rows and more others) and None
    (task off).

    Why not maximise the whole screen's recall: the lexicon was written while reading these rows, so the
    text source misses fewer of them than it will of new posts, and a fit on the whole screen would
    undervalue the model for exactly the posts the lexicon has not seen."""
    tasks = sorted({t for r in rows for t in r.probabilities})
    positives = [r for r in rows if r.label == RISK]
    calm = [r for r in rows if r.label == BUDGET_LABEL]
    allowed = max_flag_rate * len(calm) - sum(r.text_level != "none" for r in calm)
    candidates = [[None, *sorted({r.probabilities[t] for r in positives if t in r.probabilities})] for t in tasks]
    best, best_key = dict.fromkeys(tasks), None
    for combo in itertools.product(*candidates):
        th = dict(zip(tasks, combo))
        r = rates(rows, "model", th)
        if r[BUDGET_LABEL]["flagged"] > allowed + 1e-9:
            continue
        key = (r[RISK]["flagged"], -r[BUDGET_LABEL]["flagged"], -sum(v["flagged"] for v in r.values()))
        if best_key is None or key > best_key:
            best, best_key = th, key
    return best


def report(rows: list[Row], thresholds: dict[str, float | None], with_model: bool) -> dict:
    out = {}
    for p in ("A", "B"):
        sel = [r for r in rows if r.part == p]
        out[p] = {s: rates(sel, s, thresholds) for s in (SOURCES if with_model else ("text",))}
        out[p]["text_crisis_level_recall"] = _ratio(sum(r.text_level == "crisis" for r in sel if r.label == RISK),
                                                    sum(r.label == RISK for r in sel))
        if with_model:  # does the probability rank self-harm posts above "no mental disorders" posts?
            pair = [r for r in sel if r.label in (RISK, BUDGET_LABEL)]
            out[p]["model_auroc"] = {t: auroc([r.probabilities[t] for r in pair], [r.label == RISK for r in pair])
                                     for t in MODEL_SCREEN}
    return out


def _ratio(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def markdown(results: dict) -> str:
    head = [f"| source | part | recall: {RISK} | flags: {' | '.join(OTHERS)} |",
            "|---|---|---:|" + "---:|" * len(OTHERS)]
    lines = []
    for p, name in (("A", "A (fit)"), ("B", "**B (report)**")):
        for s in SOURCES:
            if s not in results["parts"][p]:
                continue
            r = results["parts"][p][s]
            cells = [f"{r[lab]['rate']:.3f} ({r[lab]['flagged']}/{r[lab]['n']})" if r[lab]["n"] else "–"
                     for lab in (RISK, *OTHERS)]
            lines.append(f"| {s} | {name} | " + " | ".join(cells) + " |")
    foot = []
    if (th := results.get("thresholds")) is not None:
        foot.append(f"\nthresholds (fitted on part A, flag budget {results['max_flag_rate']:.0%} on "
                    f"'{BUDGET_LABEL}'): {th}")
        foot += [f"model AUROC, {RISK} vs {BUDGET_LABEL}, part {p}: {results['parts'][p].get('model_auroc')}"
                 for p in ("A", "B")]
    return "\n".join(head + lines + foot)


def text_rows(examples) -> list[Row]:
    return [Row(part(e.text), e.label, overall_level(text_signals(e.text))) for e in examples]


async def model_probabilities(model: str, texts: list[str], concurrency: int, kv_cache_gib: float) -> list[dict]:
    from tqdm import tqdm

    from mental_r1.engine import EngineLimits
    from mental_r1.loading import load_assessor

    assessor = load_assessor(model, EngineLimits(kv_cache_gib=kv_cache_gib, max_num_seqs=concurrency))
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(texts), desc="screening", unit="post")

    async def one(i: int, text: str) -> dict:
        async with gate:
            p = await assessor.risk_probabilities(text, list(MODEL_SCREEN), f"screen-{i}")
        bar.update()
        return p

    try:
        return await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
    finally:
        bar.close()
        assessor.engine.shutdown()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--model", default=None, help="checkpoint folder; default: the embedded default model")
    ap.add_argument("--text-only", action="store_true", help="the text source alone (no model, no fit)")
    ap.add_argument("--max-flag-rate", type=float, default=0.08,
                    help=f"flag budget of the whole screen on '{BUDGET_LABEL}' posts of part A when fitting")
    ap.add_argument("--limit", type=int, default=None, help="rows per label and part (a quick check)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--kv-cache-gib", type=float, default=2.0)
    ap.add_argument("--write-thresholds", action="store_true",
                    help="record the fitted thresholds for the model in --thresholds-file")
    ap.add_argument("--thresholds-file", type=Path, default=THRESHOLDS_FILE,
                    help="where the service reads them (MENTAL_R1_SCREEN_THRESHOLDS_FILE); default: the shipped file")
    ap.add_argument("--output", required=True, type=Path)
    args = ap.parse_args(argv)
    if args.write_thresholds and (args.text_only or args.limit):
        sys.exit("error: --write-thresholds needs the model on every row: drop --text-only and --limit")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # shut the engine's workers down, not orphan them

    try:
        examples = load_split(args.data_dir, "test", ["t-sid"], carve=False)  # both parts
    except DataError as e:
        sys.exit(f"error: {e}")
    if args.limit:
        keep, seen = [], {}
        for e in examples:
            k = (part(e.text), e.label)
            seen[k] = seen.get(k, 0) + 1
            if seen[k] <= args.limit:
                keep.append(e)
        examples = keep
    t0 = time.perf_counter()
    rows = text_rows(examples)
    model_name = None
    thresholds = None
    if not args.text_only:
        from mental_r1.loading import checkpoint_folder, model_info

        try:
            folder = checkpoint_folder(args.model)
        except FileNotFoundError as e:
            sys.exit(f"error: {e}")
        info = model_info(folder, None)
        model_name = model_key(info.name, info.version)
        probs = asyncio.run(model_probabilities(str(folder), [e.text for e in examples], args.concurrency,
                                                args.kv_cache_gib))
        for row, p in zip(rows, probs):
            row.probabilities = {t: round(v, 6) for t, v in p.items()}
        # fitted on part A's posts that the model never trained on: its validation rows (carved_split "val");
        # the rest of part A is the model's training data, where its probabilities are over-confident
        fit = [r for r, e in zip(rows, examples) if r.part == "A" and carved_split(e) == "val"]
        thresholds = fit_thresholds(fit, args.max_flag_rate)

    results = {"model": model_name, "data": str(args.data_dir / "test" / "t-sid.csv"), "limit": args.limit,
               "max_flag_rate": args.max_flag_rate, "thresholds": thresholds,
               "parts": report(rows, thresholds or {}, not args.text_only),
               "wall_time_s": round(time.perf_counter() - t0, 1),
               "rows": [asdict(r) for r in rows]}
    table = markdown(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    args.output.with_suffix(".md").write_text(table + "\n")
    print(table)
    if args.write_thresholds:
        b = results["parts"]["B"]["text + model"]
        write_model_screen(model_name, thresholds, {
            "on": "t-sid test half, part A, the model's validation posts (training/screen_eval.py)",
            "max_flag_rate": args.max_flag_rate,
            "part_b": {"recall": b[RISK]["rate"], "flag_rate": {lab: b[lab]["rate"] for lab in OTHERS}},
            "date": datetime.date.today().isoformat(), "results": str(args.output)}, args.thresholds_file)
        print(f"\nwrote the thresholds of {model_name} to {args.thresholds_file}")
    print(f"\nwrote {args.output} and {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
