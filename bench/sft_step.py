"""Cold-start SFT step time, side by side: where a step's time goes and what each lever buys.

    python -m bench.sft_step --data-dir ../shared/data/imhi --steps 4 --output bench/results/sft_step.json

Runs a few real optimizer steps of training/run_sft.py's trainer on the same real rows (batch 4 x 2
accumulation, bf16 autocast, the shipped config's prompt and target lengths) for each variant, one after
another in one process, and reports the median step time (the first step is a warm-up and not counted)
and its ratio to the first variant:

- `trl-loss full`:   TRL 1.16's own loss (fused LM head over every position + full-vocabulary entropy),
                     all weights trained: the setup of the first feasibility run;
- `completion full`: ColdStartSFTTrainer's loss (LM head on completion positions only), all weights;
- `completion lora`: the same loss, a LoRA adapter (r 16, all linear layers; the shipped recipe);
- `completion lora dropout`: the same with LoRA dropout 0.05 (peft then cannot skip the dropout of every
                     adapted layer's input).

Run it on an idle machine (it is a heavy job: `uptime` first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from bench.provenance import provenance
from mental_r1.data import load_split
from training.models import resolve_model_path
from training.prompts import select_examples
from training.run_sft import ColdStartSFTTrainer, SFTRunArguments, sft_rows

VARIANTS = {  # name: (trainer class, LoRA?, LoRA dropout)
    "trl-loss full": (SFTTrainer, False, 0.0),
    "completion full": (ColdStartSFTTrainer, False, 0.0),
    "completion lora": (ColdStartSFTTrainer, True, 0.0),
    "completion lora dropout": (ColdStartSFTTrainer, True, 0.05),
}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def run_variant(name: str, model_path: Path, rows: list[dict], steps: int, out_dir: Path) -> dict:
    trainer_cls, use_peft, dropout = VARIANTS[name]
    cfg = SFTConfig(output_dir=str(out_dir), max_steps=steps + 1, per_device_train_batch_size=4,
                    gradient_accumulation_steps=2, learning_rate=2e-4, use_cpu=True, bf16=True,
                    gradient_checkpointing=False, logging_steps=1, save_strategy="no", report_to="none",
                    dataloader_num_workers=0, max_length=None, seed=0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    peft = (LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear")
            if use_peft else None)
    timer = StepTimer()
    trainer = trainer_cls(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                           processing_class=AutoTokenizer.from_pretrained(model_path), peft_config=peft,
                           callbacks=[timer])
    trainer.train()
    timed = timer.times[1:]
    return {"variant": name, "step_times_s": [round(t, 2) for t in timer.times], "median_s": statistics.median(timed)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--model", default="base")
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps per variant (plus one warm-up)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    started = os.getloadavg()
    model_path = resolve_model_path(args.model)
    tok = AutoTokenizer.from_pretrained(model_path)
    run = SFTRunArguments(max_prompt_tokens=320, max_reasoning_tokens=96, max_stimulus_tokens=40)
    examples = select_examples(load_split(args.data_dir, "train"), 40, seed=0, balanced=True)
    rows, _ = sft_rows(tok, examples, run, max_length=480)
    tokens = [len(r["input_ids"]) for r in rows]
    completion = [sum(x != -100 for x in r["labels"]) for r in rows]
    results = []
    for name in args.variants.split(","):
        res = run_variant(name, model_path, rows, args.steps, Path("runs/bench_sft") / name.replace(" ", "_"))
        results.append(res)
        print(f"{name:28s} median {res['median_s']:.2f} s/step  ({res['step_times_s']})", flush=True)
    base = results[0]["median_s"]
    for r in results:
        r["ratio_to_first"] = round(r["median_s"] / base, 3)
    report = {"rows": len(rows), "median_row_tokens": statistics.median(tokens),
              "median_completion_tokens": statistics.median(completion), "batch": "4 x 2 accumulation",
              "torch_threads": torch.get_num_threads(), "results": results,
              "provenance": provenance(started)}
    print(json.dumps(report, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
