"""Train Mental-R1 with CRPO, or an RL baseline under the same harness and data.

    python training/run_crpo.py --config training/configs/cpu_smoke.yaml                 # tiny model, ~1 min
    python training/run_crpo.py --config training/configs/cpu_smollm2.yaml               # SmolLM2-135M, hours
    python training/run_crpo.py --config training/configs/cpu_smollm2.yaml --algorithm grpo --output_dir runs/grpo
    python training/run_crpo.py --config training/configs/cpu_smollm2.yaml --resume      # after a kill
    python training/run_crpo.py --config training/configs/crpo_smollm2_lora.yaml         # v1 recipe, SFT adapter continued
    python training/run_crpo.py --config training/configs/crpo_smollm2_v2.yaml --adapter P   # v2 recipe (issue 19)
    python training/run_crpo.py --config training/configs/crpo_smollm2_v2.yaml --adapter runs/X/final --validate_only true \\
        --output_dir runs/X_val                                      # measure a model with the run's validation
    accelerate launch --config_file training/configs/accelerate_zero2.yaml \\
        training/run_crpo.py --config training/configs/gpu_qwen3_8b.yaml                # multi-GPU, the paper's settings

Any field of CRPOConfig (TRL's GRPOConfig + algorithm/schedule) or RunArguments can be given as
`--key value` after the YAML and overrides it. Outputs in `output_dir`: Trainer checkpoints
(`checkpoint-N/`, complete iff they hold `checkpoint_complete.json`), `metrics.jsonl`, `metrics.png`
(per-stage entropy and rewards over steps), with validation `validation.json` and `best/` (the best
validation's trainable weights), and `final/`, the Hugging Face checkpoint folder (or adapter) to serve,
built from the best validation's weights when validation runs.

Departures from the paper (main.py of xin-wang18/Mental-R1 on TRL 0.21): TRL 1.16; IMHI instead of the
paper's 8 datasets (the paper's CSV layout loads too); stage masks from decoded text offsets
(training/stage_masks.py); the entropy term normalised as documented in training/entropy.py; posts cut to
fit `max_prompt_tokens`; no cold start in the paper, but small models need one (training/run_sft.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import TrlParser

from mental_r1.data import load_split
from training.adapters import fresh_lora_config, merged_start, stacked_adapter
from training.checkpoints import resume_checkpoint, write_json_atomic
from training.config import CRPOConfig, RunArguments
from training.crpo_trainer import CRPOTrainer
from training.export import export_checkpoint, metrics_table, versions
from training.models import build_tiny_model, resolve_model_path
from training.prompts import rl_rows, select_examples
from training.rewards import AccuracyReward, LabelProbReward, RewardWeights, format_reward, prior_weights
from training.run_log import JsonlMetricsCallback, final_metrics, plot_metrics, read_jsonl
from training.step_order import paired_order
from training.validation import SCORE, validation_set

log = logging.getLogger("training.run_crpo")


def parse(argv: list[str] | None = None) -> tuple[RunArguments, CRPOConfig]:
    return TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(argv)


def resolved_config(run: RunArguments, cfg: CRPOConfig) -> dict:
    return {"run": dataclasses.asdict(run), "trainer": cfg.to_dict(), "stage_betas": list(cfg.betas)}


def build_trainer(run: RunArguments, cfg: CRPOConfig, callbacks=()) -> tuple[CRPOTrainer, dict]:
    """The trainer of a run (model, optional adapter, data, rewards, validation) and what the run record needs."""
    if run.data_dir is None:
        raise SystemExit("error: no data; pass --data-dir (IMHI folder or a folder of paper-format datasets)")
    train = load_split(run.data_dir, "train", run.datasets)
    weights = RewardWeights.from_examples(train)  # from the full training split, not the subset
    examples = select_examples(train, run.samples_per_dataset, cfg.seed, balanced=run.balanced)
    if cfg.paired_steps:
        examples = paired_order(examples, cfg.prompts_per_step, cfg.seed,
                                rotate_datasets=cfg.step_order == "round_robin", tasks_per_step=cfg.tasks_per_step)
    log.info("training on %d examples from %s; reward weights %s", len(examples),
             sorted({e.dataset for e in examples}), json.dumps(dataclasses.asdict(weights)))

    source = resolve_model_path(run.model_name_or_path)
    model_path = build_tiny_model(source, Path(cfg.output_dir) / "tiny_init", cfg.seed) if run.tiny_model else source
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, run.dtype))
    peft_config = None
    if run.adapter and run.merge_adapter:  # the SFT model merged, a fresh adapter on top: the reference = the start
        model = merged_start(model, run.adapter)
        peft_config = fresh_lora_config(run.adapter, run.lora_r, run.lora_alpha)
    elif run.adapter:
        if cfg.beta != 0.0:
            raise SystemExit("error: --adapter with merge_adapter false keeps training the SFT adapter itself; for a "
                             "KL anchor to the SFT model set merge_adapter: true (the SFT adapter merged into the "
                             "base, a fresh adapter on top, the reference = the SFT model), or set beta: 0")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, run.adapter, is_trainable=True)
    rows = rl_rows(tokenizer, examples, run.max_prompt_tokens)
    priors = prior_weights(train, examples) if cfg.label_prior == "natural" else None
    if priors:
        log.info("label_prob prior weights (natural share / pool share): %s", json.dumps(priors))
    for row, ex in zip(rows, examples, strict=True):
        row["label_texts"] = [lab.text for lab in ex.task.labels]  # in `options` order: what label_prob scores
        row["prior_weight"] = priors[ex.task.id][ex.label] if priors else 1.0
    decision = (AccuracyReward(weights) if cfg.reward == "answer_match"
                else LabelProbReward(log=cfg.reward == "label_logprob"))
    validation = None
    if cfg.eval_every > 0:
        validation = validation_set(tokenizer, run.data_dir, run.eval_datasets or sorted({e.dataset for e in examples}),
                                    cfg.eval_rows_per_dataset, run.max_prompt_tokens)
        log.info("validating every %d steps on %d val rows", cfg.eval_every, len(validation[0]))
    trainer = CRPOTrainer(model=model, reward_funcs=[format_reward, decision], args=cfg,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          callbacks=list(callbacks), peft_config=peft_config, validation=validation)
    about = {"source": source, "model_path": model_path, "weights": weights, "examples": examples, "priors": priors}
    return trainer, about


def export_model(trainer: CRPOTrainer, run: RunArguments, model_path: Path):
    """What final/ holds: with merge_adapter, one adapter on the base (SFT + RL stacked, training/adapters.py);
    otherwise the trained model (or adapter) itself."""
    policy = trainer.accelerator.unwrap_model(trainer.model)
    if not (run.adapter and run.merge_adapter):
        return policy
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    return stacked_adapter(base, run.adapter, policy)


def validate_only(trainer: CRPOTrainer, out_dir: Path) -> Path:
    """`--validate_only`: the start's validation, written to output_dir/validation_only.json."""
    if trainer.validation is None:
        raise SystemExit("error: --validate_only needs validation rows; set --eval_every to a positive number")
    metrics = trainer.validation.measure()
    trainer.close_rollout_engine()
    path = out_dir / "validation_only.json"
    write_json_atomic(path, metrics)
    log.info("validation of the start: %s = %.2f, AUROC %.3f; wrote %s", SCORE, metrics[SCORE],
             metrics.get("val/avg_auroc", float("nan")), path)
    return path


def main(argv: list[str] | None = None) -> Path:
    run, cfg = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out_dir = Path(cfg.output_dir)
    log.info("resolved config: %s", json.dumps(resolved_config(run, cfg), default=str))
    jsonl = out_dir / "metrics.jsonl"
    trainer, about = build_trainer(run, cfg, [JsonlMetricsCallback(jsonl)])
    source, model_path, weights, examples = (about[k] for k in ("source", "model_path", "weights", "examples"))
    tokenizer = trainer.processing_class
    if run.validate_only:
        return validate_only(trainer, out_dir)
    checkpoint = resume_checkpoint(out_dir, run.resume)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.close_rollout_engine()
    best = trainer.validation.restore_best() if trainer.validation else None  # every process
    if best:
        log.info("final/ holds the weights of step %d (validation %.2f)", best["step"], best["score"])
    if not trainer.is_world_process_zero():
        return out_dir / "final"

    rows = read_jsonl(jsonl)
    plot_metrics(jsonl, out_dir / "metrics.png", title=f"{cfg.algorithm} · {Path(str(model_path)).name}")
    metrics = final_metrics(rows)
    record = resolved_config(run, cfg) | {
        "model_source": str(model_path), "resumed_from": checkpoint, "global_step": trainer.state.global_step,
        "selected_step": best["step"] if best else trainer.state.global_step,
        "validation": {"best": best, "history": trainer.validation.tracker.history} if trainer.validation else None,
        "final_metrics": metrics,
        "reward_weights": dataclasses.asdict(weights), "prior_weights": about["priors"],
        "train_examples": len(examples), "versions": versions()}
    card = {
        "model_name": f"Mental-R1 {cfg.algorithm.upper()} ({Path(str(source)).name})",
        "summary": f"Trained with `{cfg.algorithm}` ({'GRPO + stage-wise entropy' if cfg.algorithm == 'crpo' else 'RL baseline'}) "
                   "by training/run_crpo.py.",
        "base_model": str(model_path), "algorithm": cfg.algorithm,
        "data": f"{run.data_dir} — {', '.join(sorted({e.dataset for e in examples}))} (train split, mixed)",
        "examples": str(len(examples)),
        "steps": str(trainer.state.global_step) + (f" (weights of step {best['step']}: the best validation, average "
                                                   f"weighted F1 {best['score']:.1f})" if best else ""),
        "schedule": ", ".join(f"{b:+.4f}" for b in cfg.betas),
        "settings": (f"reward format + {cfg.reward}, loss_type {cfg.loss_type}, "
                     f"epsilon {cfg.epsilon}/{cfg.epsilon_high}, KL beta {cfg.beta}{' (to the SFT start)' if run.adapter and run.merge_adapter else ''}, "
                     f"{cfg.num_generations} generations, temperature {cfg.temperature}, top_p {cfg.top_p}, "
                     f"scale_rewards {cfg.scale_rewards}, label_prior {cfg.label_prior}, lr {cfg.learning_rate}, completion ≤ {cfg.max_completion_length} tokens"),
        "versions": versions(), "metrics": metrics_table(metrics)}
    final = export_checkpoint(export_model(trainer, run, Path(model_path)), tokenizer, out_dir / "final", record,
                              card, max_new_tokens=cfg.max_completion_length)
    log.info("final checkpoint: %s", final)
    return final


if __name__ == "__main__":
    main()
