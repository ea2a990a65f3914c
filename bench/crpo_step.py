"""RL step time: CRPO and the baselines, built exactly as training/run_crpo.py builds a run, side by side.

    .venv/bin/python -m bench.crpo_step --config training/configs/crpo_smollm2_lora.yaml --label before
    .venv/bin/python -m bench.crpo_step --config training/configs/crpo_smollm2_lora.yaml --rollout vllm --label after
    .venv/bin/python -m bench.crpo_step --config training/configs/cpu_smoke.yaml --steps 2      # pipeline smoke
    .venv/bin/python -m bench.crpo_step --parts loss --model runs/sft_v1/final --loss-reps 7   # the term alone
    .venv/bin/python -m bench.crpo_step --config training/configs/crpo_smollm2_v2.yaml --adapter runs/sft_v2/final \
        --eval_every 0 --algorithms crpo,crpo:label_scoring=policy --rounds 2 --steps 4 --label reward-scoring

Steps part: each round trains a fresh trainer per variant (`--algorithms`, default grpo,crpo; a variant is an
algorithm, optionally with `:key=value[;key=value]` config overrides, e.g. `crpo:label_scoring=policy`) for
`--steps` optimizer steps from the config's checkpoint, seed and prompts, alternating which goes first, so
drifting machine load hits all alike. Any further `--key value` overrides the config as on run_crpo.py's command line.
A step is timed from the Trainer's step-begin to step-end callback (rollout, rewards, loss, backward,
optimizer); the first step of every run is warm-up and dropped. Reported: the median step time of each,
the ratio CRPO/GRPO (goal <= 1.05), rollout tokens/s (completion tokens generated / time inside the
rollout), the median time spent computing rewards (label_prob scores the commit point) and the load average
around each run.

Loss part: CRPO's extra work in isolation, on one fixed batch of 8 stage-formatted completions (the SFT
targets of 8 training examples): the stage masks (`stage_index_batch`), and loss + backward with the paper's
betas vs. all betas 0 (same trainer, same batch, interleaved `--loss-reps` times).
Results: bench/results/crpo_step-<parts>[-<label>]-<date>.json, with the git commit and machine load (bench.provenance).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from bench.provenance import provenance
from mental_r1.data import load_split
from training.config import CRPOConfig
from training.crpo_trainer import CRPOTrainer
from training.models import build_tiny_model, resolve_model_path
from training.prompts import prompt_for, select_examples
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


def timed_parts(trainer) -> dict:
    """Wrap the trainer's rollout (`_generate_single_turn`) and reward computation (`_calculate_rewards`) to
    record their seconds and the completion tokens generated."""
    totals = {"gen_seconds": 0.0, "gen_tokens": 0, "gen_calls": [], "reward_calls": []}
    generate, rewards = trainer._generate_single_turn, trainer._calculate_rewards

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        completion_ids, logprobs = generate(*args, **kwargs)
        seconds, tokens = time.perf_counter() - t0, sum(len(c) for c in completion_ids)
        totals["gen_seconds"] += seconds
        totals["gen_tokens"] += tokens
        totals["gen_calls"].append({"seconds": round(seconds, 2), "tokens": tokens})
        return completion_ids, logprobs

    def timed_rewards(*args, **kwargs):
        t0 = time.perf_counter()
        out = rewards(*args, **kwargs)
        totals["reward_calls"].append(round(time.perf_counter() - t0, 3))
        return out

    trainer._generate_single_turn = timed
    trainer._calculate_rewards = timed_rewards
    return totals


def variant(spec: str) -> tuple[str, list[str]]:
    """`crpo:label_scoring=policy;beta=0` → ("crpo", ["--label_scoring", "policy", "--beta", "0"])."""
    algorithm, _, rest = spec.partition(":")
    flags: list[str] = []
    for pair in filter(None, rest.split(";")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: variant {spec!r}: write overrides as key=value, e.g. crpo:label_scoring=policy")
        flags += [f"--{key}", value]
    return algorithm, flags


def run_one(kind: str, args, out: Path) -> dict:
    """`--steps` optimizer steps of the variant `kind` built exactly as training/run_crpo.py builds a run of
    `--config`."""
    from training.run_crpo import build_trainer, parse

    algorithm, flags = variant(kind)
    name = kind.replace(":", "_").replace("=", "-").replace(";", "_")
    run, cfg = parse(["--config", args.config, "--algorithm", algorithm, "--max_steps", str(args.steps),
                      "--output_dir", str(out / name), "--save_strategy", "no", "--report_to", "none",
                      "--disable_tqdm", "true", *args.overrides, *flags])
    timer = StepTimer()
    trainer, _ = build_trainer(run, cfg, [timer])
    totals = timed_parts(trainer)
    load_before = os.getloadavg()[0]
    trainer.train()
    engine = getattr(trainer, "_rollout", None)
    reloads = [round(t, 2) for t in engine.load_seconds] if engine else []
    trainer.close_rollout_engine()
    return {"kind": kind, "step_seconds": timer.times, **totals, "reload_seconds": reloads, "loadavg_before": load_before,
            "loadavg_after": os.getloadavg()[0]}


def summarize(runs: list[dict], kinds: list[str]) -> dict:
    out = {}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        steps = [t for r in mine for t in r["step_seconds"][1:]]  # drop each run's warm-up step
        calls = [c for r in mine for c in r["gen_calls"][1:]]  # the first rollout also starts an engine
        out[kind] = {"median_step_seconds": statistics.median(steps), "timed_steps": len(steps),
                     "median_rollout_seconds": statistics.median(c["seconds"] for c in calls),
                     "rollout_tokens_per_second": sum(c["tokens"] for c in calls) / sum(c["seconds"] for c in calls),
                     "median_reward_seconds": statistics.median(x for r in mine for x in r["reward_calls"][1:]),
                     "median_rest_seconds": statistics.median(t - c["seconds"] for t, c in zip(steps, calls))}
    if "crpo" in out and "grpo" in out:
        out["ratio_crpo_over_grpo"] = out["crpo"]["median_step_seconds"] / out["grpo"]["median_step_seconds"]
    return out


def loss_settings(args, out: Path) -> dict:
    return {"output_dir": str(out), "max_steps": 1, "per_device_train_batch_size": args.completions,
            "num_generations": 4, "max_completion_length": 160, "temperature": 0.85, "top_p": 0.95,
            "learning_rate": 1e-5, "beta": 0.01, "epsilon": 0.2, "seed": args.seed, "use_cpu": True, "bf16": False,
            "gradient_checkpointing": False, "use_vllm": False, "save_strategy": "no", "report_to": "none",
            "dataloader_num_workers": 0}


def loss_part(args, model_path: Path, examples, weights: RewardWeights, out: Path) -> dict:
    """Stage-mask time and loss+backward time with and without the stage term, on one fixed batch."""
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    settings = loss_settings(args, out / "loss")
    trainer = CRPOTrainer(model=model, reward_funcs=[format_reward, AccuracyReward(weights)],
                          args=CRPOConfig(algorithm="crpo", **settings),
                          train_dataset=Dataset.from_list([{"prompt": "x"}] * 8), processing_class=tok)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    examples = [e for e in examples if sft_target(e, count, 96, 40)][: args.completions]
    prompts = [prompt_for(tok, e, 320) for e in examples]
    targets = [sft_target(e, count, 96, 40) + tok.eos_token for e in examples]
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
    p.add_argument("--config", default="training/configs/crpo_smollm2_lora.yaml",
                   help="run config whose trainer is timed (steps part), as training/run_crpo.py builds it")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per run (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each algorithm, interleaved")
    p.add_argument("--algorithms", default="grpo,crpo")
    p.add_argument("--model", default="base", help="loss part: checkpoint folder or `base`")
    p.add_argument("--tiny", action="store_true", help="loss part: a random tiny model with the model's tokenizer")
    p.add_argument("--data-dir", default="../shared/data/imhi", help="loss part: the IMHI folder")
    p.add_argument("--completions", type=int, default=8, help="loss part: completions in the fixed batch")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--parts", default="steps", help="steps (full trainer steps) and/or loss (isolated)")
    p.add_argument("--loss-reps", type=int, default=7)
    p.add_argument("--workdir", default="runs/bench_crpo_step")
    p.add_argument("--full-lm-head", action="store_true",
                   help="score every position in the LM head, as TRL does on CPU (the 'before' of compact_lm_head)")
    p.add_argument("--label", default="", help="suffix of the result file name, e.g. before / after")
    p.add_argument("--output", default=None, help="default: bench/results/crpo_step-<parts>[-label]-<date>.json")
    args, args.overrides = p.parse_known_args(argv)

    workdir = Path(args.workdir)
    parts = set(args.parts.split(","))
    if args.full_lm_head:
        import contextlib

        import training.crpo_trainer

        training.crpo_trainer.compact_lm_head = contextlib.nullcontext
    started = os.getloadavg()
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"),
              "settings": {k: v for k, v in vars(args).items() if k not in ("output",)},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}, "summary": {}}
    if "steps" in parts:
        kinds = args.algorithms.split(",")
        runs = []
        for r in range(args.rounds):
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                runs.append(run_one(kind, args, workdir))
                print(f"round {r} {kind}: steps {[round(t, 2) for t in runs[-1]['step_seconds']]} s, rollout "
                      f"{runs[-1]['gen_seconds']:.1f} s for {runs[-1]['gen_tokens']} tokens", flush=True)
        result["summary"] = summarize(runs, kinds)
        result["runs"] = runs
    if "loss" in parts:
        model_path = resolve_model_path(args.model)
        if args.tiny:
            model_path = build_tiny_model(model_path, workdir / "tiny_init", args.seed)
        train = load_split(args.data_dir, "train")
        result["loss_part"] = loss_part(args, model_path, select_examples(train, 8, args.seed),
                                        RewardWeights.from_examples(train), workdir)
    result["provenance"] = provenance(started)
    tag = "-".join(sorted(parts)) + (f"-{args.label}" if args.label else "")
    out = Path(args.output or RESULTS / f"crpo_step-{tag}-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k in ("summary", "loss_part")}, indent=2))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
