"""CRPO's cost over plain GRPO: optimizer-step time on the same config, data and seed, side by side.

    .venv/bin/python bench/crpo_step.py --model runs/sft_smollm2/final --data-dir ../shared/data/imhi
    .venv/bin/python bench/crpo_step.py --model base --tiny --steps 2 --rounds 1      # pipeline smoke (~2 min)

Each round trains a fresh plain `trl.GRPOTrainer` (loss_type grpo) and a fresh `CRPOTrainer` (algorithm crpo:
the same GRPO loss plus stage masks and the stage-wise entropy term) for `--steps` optimizer steps from the
same checkpoint, seed and prompts, alternating which goes first, so drifting machine load hits both alike.
A step is timed from the Trainer's step-begin to step-end callback (generation, scoring, loss, backward,
optimizer); the first step of every run is warm-up and dropped. Reported: the median step time of each,
their ratio CRPO/GRPO (goal ≤ 1.05), rollout tokens/s (completion tokens generated ÷ time inside
generation) and the load average around each run.

On a machine shared with other jobs the step medians drift with the load, so `--parts loss` also measures
CRPO's extra work in isolation, on one fixed batch of 8 stage-formatted completions (the SFT targets of 8
training examples): the stage masks (`stage_index_batch`), and loss + backward with the paper's betas vs.
all betas 0 (same trainer, same batch, interleaved `--loss-reps` times; the difference is the term's
forward and the entropy gradient through the LM head). Results: bench/results/crpo_step-<parts>-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from mental_r1.data import load_split
from training.config import CRPOConfig
from training.crpo_trainer import CRPOTrainer
from training.models import build_tiny_model, resolve_model_path
from training.prompts import prompt_for, rl_rows, select_examples
from training.rewards import AccuracyReward, RewardWeights, format_reward
from training.sft_targets import sft_target
from training.stage_masks import stage_index_batch

RESULTS = Path(__file__).resolve().parent / "results"


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)


class RolloutTimer:
    """Mixin: time spent in generation and the number of completion tokens generated."""

    gen_seconds = 0.0
    gen_tokens = 0

    def _generate_single_turn(self, *args, **kwargs):
        t0 = time.perf_counter()
        completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        self.gen_seconds += time.perf_counter() - t0
        self.gen_tokens += sum(len(c) for c in completion_ids)
        return completion_ids, logprobs


class TimedGRPO(RolloutTimer, GRPOTrainer):
    pass


class TimedCRPO(RolloutTimer, CRPOTrainer):
    pass


def shared_settings(args, out: Path) -> dict:
    return {"output_dir": str(out), "max_steps": args.steps, "per_device_train_batch_size": args.completions,
            "num_generations": 4, "max_completion_length": args.max_completion_length, "temperature": 0.85,
            "top_p": 0.95, "learning_rate": args.lr, "beta": 0.01, "epsilon": 0.2, "epsilon_high": 0.2,
            "scale_rewards": "group", "seed": args.seed, "use_cpu": True, "bf16": False,
            "gradient_checkpointing": False, "use_vllm": False, "logging_steps": 1, "save_strategy": "no",
            "report_to": "none", "disable_tqdm": True, "dataloader_num_workers": 0}


def run_one(kind: str, args, model_path: Path, rows: list[dict], weights: RewardWeights, out: Path) -> dict:
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    settings = shared_settings(args, out / kind)
    if kind == "grpo":
        cfg, cls = GRPOConfig(loss_type="grpo", **settings), TimedGRPO
    else:
        settings.pop("epsilon_high"), settings.pop("scale_rewards")  # set by algorithm=crpo to the same values
        cfg, cls = CRPOConfig(algorithm="crpo", **settings), TimedCRPO
    timer = StepTimer()
    trainer = cls(model=model, reward_funcs=[format_reward, AccuracyReward(weights)], args=cfg,
                  train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[timer])
    load_before = os.getloadavg()[0]
    trainer.train()
    return {"kind": kind, "step_seconds": timer.times, "gen_seconds": trainer.gen_seconds,
            "gen_tokens": trainer.gen_tokens, "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}


def summarize(runs: list[dict]) -> dict:
    out = {}
    for kind in ("grpo", "crpo"):
        mine = [r for r in runs if r["kind"] == kind]
        steps = [t for r in mine for t in r["step_seconds"][1:]]  # drop each run's warm-up step
        out[kind] = {"median_step_seconds": statistics.median(steps), "timed_steps": len(steps),
                     "rollout_tokens_per_second": sum(r["gen_tokens"] for r in mine) / sum(r["gen_seconds"] for r in mine)}
    out["ratio_crpo_over_grpo"] = out["crpo"]["median_step_seconds"] / out["grpo"]["median_step_seconds"]
    return out


def loss_part(args, model_path: Path, examples, weights: RewardWeights, out: Path) -> dict:
    """Stage-mask time and loss+backward time with and without the stage term, on one fixed batch."""
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    settings = shared_settings(args, out / "loss")
    settings.pop("epsilon_high"), settings.pop("scale_rewards")
    trainer = CRPOTrainer(model=model, reward_funcs=[format_reward, AccuracyReward(weights)],
                          args=CRPOConfig(algorithm="crpo", **settings),
                          train_dataset=Dataset.from_list([{"prompt": "x"}] * 8), processing_class=tok)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    examples = [e for e in examples if e.explanation][: args.completions]
    prompts = [prompt_for(tok, e, 320) for e in examples]
    targets = [sft_target(e, 12) + tok.eos_token for e in examples]
    p = tok(prompts, add_special_tokens=False, return_tensors="pt", padding=True, padding_side="left")
    c = tok(targets, add_special_tokens=False, return_tensors="pt", padding=True, padding_side="right")
    batch = {"prompt_ids": p["input_ids"], "prompt_mask": p["attention_mask"], "completion_ids": c["input_ids"],
             "completion_mask": c["attention_mask"], "num_items_in_batch": c["attention_mask"].sum(),
             "advantages": torch.linspace(-1, 1, len(examples))}
    with torch.no_grad():
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        batch["ref_per_token_logps"] = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model, ids, att, c["input_ids"].size(1))[0]
    mask_seconds = []
    for _ in range(args.loss_reps):
        t0 = time.perf_counter()
        batch["crpo_stage"] = stage_index_batch(tok, batch["completion_ids"], batch["completion_mask"])
        mask_seconds.append(time.perf_counter() - t0)
    betas = trainer.stage_betas.clone()
    timings: dict[str, list[float]] = {"crpo": [], "grpo": []}
    for _ in range(args.loss_reps):
        for kind in ("crpo", "grpo"):
            trainer.stage_betas = betas if kind == "crpo" else torch.zeros_like(betas)
            trainer.model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            trainer._compute_loss(trainer.model, batch).backward()
            timings[kind].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in timings.items()}
    return {"completion_tokens": int(c["attention_mask"].sum()), "stage_mask_seconds_median": statistics.median(mask_seconds),
            "loss_backward_seconds_median": med, "loss_backward_ratio_crpo_over_grpo": med["crpo"] / med["grpo"],
            "loss_backward_seconds": timings}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="base", help="checkpoint folder or `base` (default)")
    p.add_argument("--tiny", action="store_true", help="a random tiny model with the model's tokenizer (smoke)")
    p.add_argument("--data-dir", default="../shared/data/imhi")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per run (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each trainer, interleaved")
    p.add_argument("--completions", type=int, default=8, help="completions per step (= prompts × 4)")
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--parts", default="steps,loss", help="steps (full trainer steps) and/or loss (isolated)")
    p.add_argument("--loss-reps", type=int, default=7)
    p.add_argument("--workdir", default="runs/bench_crpo_step")
    p.add_argument("--output", default=None, help="default: bench/results/crpo_step-<date>.json")
    args = p.parse_args(argv)

    workdir = Path(args.workdir)
    model_path = resolve_model_path(args.model)
    if args.tiny:
        model_path = build_tiny_model(model_path, workdir / "tiny_init", args.seed)
    train = load_split(args.data_dir, "train")
    weights = RewardWeights.from_examples(train)
    tok = AutoTokenizer.from_pretrained(model_path)
    examples = select_examples(train, 8, args.seed)
    rows = rl_rows(tok, examples, 320)
    parts = set(args.parts.split(","))
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "model": str(model_path),
              "tiny": args.tiny, "settings": {k: v for k, v in vars(args).items() if k not in ("output",)},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                          "loadavg_start": os.getloadavg()[0]}, "summary": {}}
    if "steps" in parts:
        runs = []
        for r in range(args.rounds):
            for kind in (("grpo", "crpo") if r % 2 == 0 else ("crpo", "grpo")):
                runs.append(run_one(kind, args, model_path, rows, weights, workdir))
                print(f"round {r} {kind}: steps {[round(t, 2) for t in runs[-1]['step_seconds']]} s", flush=True)
        result["summary"] = summarize(runs)
        result["runs"] = runs
    if "loss" in parts:
        result["loss_part"] = loss_part(args, model_path, examples, weights, workdir)
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    tag = "-".join(sorted(parts))
    out = Path(args.output or RESULTS / f"crpo_step-{tag}-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k in ("summary", "loss_part")}, indent=2))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
