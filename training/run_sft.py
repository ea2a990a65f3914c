"""Cold-start SFT: teach a small model the five-stage format before RL (its base gets ~0 format reward).

    python training/run_sft.py --config training/configs/sft_smollm2.yaml                       # full FT
    python training/run_sft.py --config training/configs/sft_smollm2.yaml --use_peft --output_dir runs/sft_lora
    python training/run_sft.py --config training/configs/sft_smollm2.yaml --resume              # after a kill

Rows are (prompt, completion) pairs for TRL's SFTTrainer: the prompt is `mental_r1.contract.build_prompt`
(chat template + pre-filled `<think>\\n<stimulus>`, exactly what RL and the service use), the completion
is the stage-formatted IMHI answer from training/sft_targets.py (how it is laid out, and its limits, are
documented there) plus EOS; the loss covers the completion only. Targets that do not parse as valid
(`parse_completion(...).valid`) or that do not fit `max_length` are dropped and counted in the log.

Full fine-tuning by default; `--use_peft` trains a LoRA adapter (peft) and, unless `--merge_lora false`,
merges it into the base weights so `final/` is a full checkpoint that transformers and vLLM load. Outputs
as in run_crpo.py: `checkpoint-N/` (resumable), `metrics.jsonl`, `final/`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python training/run_sft.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer, TrlParser

from mental_r1.contract import parse_completion
from mental_r1.data import load_split
from mental_r1.publish import publish_folder
from training.checkpoints import AtomicCheckpointMixin, resume_checkpoint
from training.config import RunArguments
from training.export import export_checkpoint, metrics_table, versions
from training.models import build_tiny_model, resolve_model_path
from training.prompts import prompt_for, select_examples
from training.run_log import JsonlMetricsCallback, final_metrics, read_jsonl
from training.sft_targets import sft_target

log = logging.getLogger("training.run_sft")


@dataclass
class SFTRunArguments(RunArguments):
    max_stage_words: int | None = field(default=None, metadata={
        "help": "Cut every stage of the target to this many words (shorter completions; default: uncut)."})
    balanced: bool = field(default=True, metadata={
        "help": "Spread each dataset's examples evenly over its tasks and labels (training/prompts.py)."})
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "Modules to adapt (default: all linear layers of the decoder)."})
    merge_lora: bool = field(default=True, metadata={
        "help": "Merge the adapter into the weights so final/ is a full checkpoint; false saves the adapter."})


class ColdStartSFTTrainer(AtomicCheckpointMixin, SFTTrainer):
    """TRL's SFTTrainer with two changes: checkpoints get a completion marker (training/checkpoints.py), and
    the loss projects only the completion positions through the LM head.

    Why the loss: on CPU, TRL 1.16's fused LM head scores *every* position (its compact path is Triton-only)
    and computes the full-vocabulary entropy of each for its logs. Here ~3/4 of a row is prompt, and the LM
    head is 576 x 49,152, so that is most of the head's work for nothing (bench/sft_step.py measures it).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # a caller that wants the outputs (Trainer's prediction step): TRL's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if model.training else "eval"
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft keeps LoRA inside
        labels = inputs["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
        mask = labels != -100
        # the backbone is called directly, past the forward that accelerate wraps in autocast: enter it here
        with self.accelerator.autocast():
            hidden = causal_lm.model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                     use_cache=False).last_hidden_state  # (B, T, H)
            logits = causal_lm.lm_head(hidden[:, :-1][mask]).float()  # (N, V), N = completion tokens of the batch
        targets = labels[mask]
        n = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / n
        with torch.no_grad():
            self._metrics[mode]["mean_token_accuracy"].append((logits.argmax(-1) == targets).float().mean().item())
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else 0
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


def sft_rows(tokenizer, examples, run: SFTRunArguments, max_length: int) -> tuple[list[dict], dict[str, int]]:
    """Token-id rows `{input_ids, labels}`: the prompt's own ids (labels -100) followed by the target's ids and
    EOS, i.e. the tokens the service and RL put in front of a generation, never a re-tokenisation of
    prompt + target (which merges a target starting with `.` or `"` into the prefill's closing `>`)."""
    rows, dropped = [], {"no_explanation": 0, "invalid_format": 0, "too_long": 0}
    for ex in examples:
        target = sft_target(ex, run.max_stage_words)
        if target is None:
            dropped["no_explanation"] += 1
            continue
        if not parse_completion(target).valid:
            dropped["invalid_format"] += 1
            continue
        prompt_ids = tokenizer(prompt_for(tokenizer, ex, run.max_prompt_tokens), add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(target_ids) > max_length:
            dropped["too_long"] += 1
            continue
        rows.append({"input_ids": prompt_ids + target_ids, "labels": [-100] * len(prompt_ids) + target_ids})
    return rows, dropped


def main(argv: list[str] | None = None) -> Path:
    run, cfg = TrlParser((SFTRunArguments, SFTConfig)).parse_args_and_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if run.data_dir is None:
        raise SystemExit("error: no data; pass --data-dir (an IMHI folder: the targets need its explanations)")
    if cfg.max_length is None:
        raise SystemExit("error: set max_length (prompt + target tokens); rows longer than it are dropped")
    out_dir = Path(cfg.output_dir)
    log.info("resolved config: %s", json.dumps({"run": dataclasses.asdict(run), "trainer": cfg.to_dict()},
                                               default=str))

    source = resolve_model_path(run.model_name_or_path)
    model_path = build_tiny_model(source, out_dir / "tiny_init", cfg.seed) if run.tiny_model else source
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    examples = select_examples(load_split(run.data_dir, "train", run.datasets), run.samples_per_dataset, cfg.seed,
                               balanced=run.balanced)
    rows, dropped = sft_rows(tokenizer, examples, run, cfg.max_length)
    log.info("SFT rows: %d of %d examples; dropped %s", len(rows), len(examples), dropped)
    if not rows:
        raise SystemExit("error: no SFT rows left; raise max_length or check the data")

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, run.dtype))
    peft_config = None
    if run.use_peft:
        peft_config = LoraConfig(task_type="CAUSAL_LM", r=run.lora_r, lora_alpha=run.lora_alpha,
                                 lora_dropout=run.lora_dropout, bias="none",
                                 target_modules=run.lora_target_modules or "all-linear")
    checkpoint = resume_checkpoint(out_dir, run.resume)
    jsonl = out_dir / "metrics.jsonl"
    trainer = ColdStartSFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft_config,
                                  callbacks=[JsonlMetricsCallback(jsonl)])
    trainer.train(resume_from_checkpoint=checkpoint)
    final_dir = out_dir / "final"
    if not trainer.is_world_process_zero():
        return final_dir

    metrics = final_metrics(read_jsonl(jsonl))
    record = {"run": dataclasses.asdict(run), "trainer": cfg.to_dict(), "model_source": str(model_path),
              "resumed_from": checkpoint, "global_step": trainer.state.global_step, "final_metrics": metrics, "sft_rows": len(rows),
              "dropped": dropped, "versions": versions()}
    if run.use_peft and not run.merge_lora:
        def build(tmp: Path) -> None:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "mental_r1_run.json").write_text(json.dumps(record, indent=2, default=str))

        publish_folder(final_dir, build)
        log.info("LoRA adapter: %s", final_dir)
        return final_dir
    model = trainer.model.merge_and_unload() if run.use_peft else trainer.model
    card = {
        "model_name": f"Mental-R1 cold-start SFT ({Path(str(source)).name})",
        "summary": "Supervised cold start that teaches the five-stage appraisal format (training/run_sft.py); "
                   "the starting point for CRPO, not a finished assessor.",
        "base_model": str(model_path), "algorithm": "sft" + (" (LoRA, merged)" if run.use_peft else " (full)"),
        "data": f"{run.data_dir} — {', '.join(sorted({e.dataset for e in examples}))} (train split, IMHI "
                "explanations laid out across the stages)",
        "examples": str(len(rows)), "steps": str(trainer.state.global_step), "schedule": "n/a (no RL)",
        "settings": f"lr {cfg.learning_rate}, max_length {cfg.max_length}, max_stage_words {run.max_stage_words}"
                    + (f", LoRA r {run.lora_r} alpha {run.lora_alpha}" if run.use_peft else ""),
        "versions": versions(), "metrics": metrics_table(metrics)}
    final = export_checkpoint(model, tokenizer, final_dir, record, card)
    log.info("final checkpoint: %s", final)
    return final


if __name__ == "__main__":
    main()
