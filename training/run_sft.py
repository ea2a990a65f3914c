"""Cold-start SFT: teach a small model the five-stage format and, above all, the decision, before RL.

    python training/run_sft.py --config training/configs/sft_smollm2_v2.yaml            # Mental-R1-135M v2
    python training/run_sft.py --config training/configs/sft_smollm2_v2.yaml --resume true   # after a kill

Rows are token ids, built exactly as the service and RL see them (mental_r1.contract.build_prompt: chat
template + pre-filled `<think>\\n<stimulus>`):
- a reasoning row per example: prompt, then the stage-formatted IMHI answer (training/sft_targets.py: whole
  sentences within a token budget) + EOS. The reasoning up to `<mental_state>` and the label continuation
  (`LABEL SENTENCE</mental_state>`) are tokenized apart, as the service scores them (mental_r1/assessor.py);
- with `direct_rows`, a second row per example: prompt + `commit_prefix("")` (an empty reasoning), then the
  label continuation only. It trains the decision without reasoning: the crisis screen's model source reads
  the model there, and evaluate.py's `--max-tokens 0` measures it.
The loss covers the targets only; tokens of the label continuation weigh `label_weight` times a reasoning
token (the decision is ~10 of ~110 target tokens, so an unweighted loss is mostly the explanations'
register), normalised by the summed weights. `balanced` spreads each dataset's rows over its tasks and labels.
Rows that do not fit `max_length`, and explanations of fewer than three sentences, are dropped and counted.

Full fine-tuning by default; `--use_peft` trains a LoRA adapter (peft) and, unless `--merge_lora false`,
merges it into the base weights so `final/` is a full checkpoint that transformers and vLLM load. Outputs
as in run_crpo.py: `checkpoint-N/` (resumable), `metrics.jsonl`, `final/`. With `eval_every` > 0 the direct
decision is validated every N steps on val rows (`val/...` rows in metrics.jsonl: weighted F1 per dataset,
their average, predicted vs gold "yes" share), `validation.json` and `best/` are written as RL writes them,
and final/ holds the best validation's weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer, TrlParser

from mental_r1.contract import COMMIT_TAG, commit_prefix, label_continuation, parse_completion
from mental_r1.data import Example, load_split
from mental_r1.publish import publish_folder
from training.checkpoints import AtomicCheckpointMixin, resume_checkpoint
from training.config import RunArguments, bf16_where_native
from training.export import export_checkpoint, metrics_table, versions
from training.models import build_tiny_model, resolve_model_path
from training.prompts import prompt_for, select_continuation, select_examples
from training.run_log import JsonlMetricsCallback, final_metrics, read_jsonl
from training.sft_targets import sft_target
from training.validation import ValidationMixin, validation_set

log = logging.getLogger("training.run_sft")


@dataclass
class SFTRunArguments(RunArguments):
    max_reasoning_tokens: int | None = field(default=None, metadata={
        "help": "Token budget of the three explanation stages (whole sentences: the longest inner sentences "
                "are dropped until they fit; default: the whole explanation)."})
    max_stimulus_tokens: int | None = field(default=None, metadata={
        "help": "Token budget of the stimulus (the post's first sentence that fits; default: no limit)."})
    label_weight: float = field(default=1.0, metadata={
        "help": "Loss weight of the label continuation's tokens relative to a reasoning token."})
    direct_rows: bool = field(default=False, metadata={
        "help": "Add a row per example that commits to the label after an empty reasoning (no explanation)."})
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
    merge_adapter: bool = field(default=False, metadata={
        "help": "SFT continues `adapter` itself (its rank, alpha and modules; lora_* are ignored): false is the "
                "only supported value here."})
    prior_samples_per_dataset: int | None = field(default=None, metadata={
        "help": "When continuing `adapter`: the samples_per_dataset of the run that trained it (with prior_seed). "
                "Its examples come last: each dataset takes samples_per_dataset unseen examples and tops up with "
                "seen ones only when it has too few (training/prompts.py select_continuation)."})
    prior_seed: int = field(default=42, metadata={"help": "The seed of the run that trained `adapter`."})


@dataclass
class ColdStartSFTConfig(SFTConfig):
    """TRL's SFTConfig + the periodic validation of the decision (training/validation.py)."""

    eval_every: int = field(default=0, metadata={
        "help": "Validate every N optimizer steps (and at the start and the last step): the direct decision "
                "(labels scored at an empty reasoning's commit point, from the model's logits) on val rows of "
                "every trained dataset; keeps the best weights by average weighted F1 (final/ is built from them) "
                "and stops early after eval_patience validations below the best. 0 disables."})
    eval_rows_per_dataset: int = field(default=40, metadata={
        "help": "Validation rows per trained dataset (the first N after evaluate.py's seeded shuffle, seed 0)."})
    eval_patience: int = field(default=0, metadata={
        "help": "Stop when this many validations in a row score below the best one (0: never stop early)."})

    def __post_init__(self):
        bf16_where_native(self)
        super().__post_init__()
        if self.eval_every < 0 or self.eval_rows_per_dataset < 1 or self.eval_patience < 0:
            raise ValueError("eval_every and eval_patience must be >= 0 and eval_rows_per_dataset >= 1")


class ColdStartSFTTrainer(ValidationMixin, AtomicCheckpointMixin, SFTTrainer):
    """TRL's SFTTrainer with three changes: checkpoints get a completion marker (training/checkpoints.py),
    the loss projects only the completion positions through the LM head, and (with `eval_every`) the direct
    decision is validated on schedule, the best weights kept (training/validation.py).

    Why the loss: on CPU, TRL 1.16's fused LM head scores *every* position (its compact path is Triton-only)
    and computes the full-vocabulary entropy of each for its logs. Here ~3/4 of a row is prompt, and the LM
    head is 576 x 49,152, so that is most of the head's work for nothing (bench/sft_step.py measures it).
    """

    def __init__(self, *args, validation: tuple[Sequence[Example], Sequence[str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.attach_validation(validation)

    def predict_probabilities(self, examples: Sequence[Example], prompts: Sequence[str]) -> list[list[float]]:
        """The direct decision for each prompt: P(label) at an empty reasoning's commit point (what evaluate.py
        --max-tokens 0 measures; no generation, so a validation costs one forward per row)."""
        return self.probabilities_at_commit(examples, prompts, [""] * len(prompts))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # a caller that wants the outputs (Trainer's prediction step): TRL's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if model.training else "eval"
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft keeps LoRA inside
        labels = inputs["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
        mask = labels != -100
        weights = inputs["weights"][:, 1:][mask] if "weights" in inputs else None  # (N,)
        # the backbone is called directly, past the forward that accelerate wraps in autocast: enter it here
        with self.accelerator.autocast():
            hidden = causal_lm.model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                     use_cache=False).last_hidden_state  # (B, T, H)
            logits = causal_lm.lm_head(hidden[:, :-1][mask]).float()  # (N, V), N = completion tokens of the batch
        targets = labels[mask]
        if weights is None:
            n = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / n
        else:  # weighted mean over this batch's target tokens (label tokens weigh label_weight)
            token_loss = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            loss = (token_loss * weights).sum() / weights.sum().clamp(min=1e-8)
        with torch.no_grad():
            self._metrics[mode]["mean_token_accuracy"].append((logits.argmax(-1) == targets).float().mean().item())
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else 0
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


def pad_rows(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch of rows (`input_ids`, `labels`, `weights`) into tensors with an attention mask."""
    width = max(len(r["input_ids"]) for r in rows)

    def pad(key, value, dtype):
        return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows], dtype=dtype)

    return {"input_ids": pad("input_ids", pad_id, torch.long), "labels": pad("labels", -100, torch.long),
            "weights": pad("weights", 0.0, torch.float32),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                                            for r in rows], dtype=torch.long)}


def _row(prompt_ids: list[int], parts: list[tuple[list[int], float]]) -> dict:
    """A row: the prompt (no loss) followed by target parts, each with its token weight."""
    ids, labels, weights = list(prompt_ids), [-100] * len(prompt_ids), [0.0] * len(prompt_ids)
    for part, w in parts:
        ids += part
        labels += part
        weights += [w] * len(part)
    return {"input_ids": ids, "labels": labels, "weights": weights}


def sft_rows(tokenizer, examples, run: SFTRunArguments, max_length: int) -> tuple[list[dict], dict[str, int]]:
    """Token-id rows `{input_ids, labels, weights}` (module docstring): the prompt's own ids (labels -100),
    then the target's ids in the pieces the service tokenizes apart, never a re-tokenisation of prompt +
    target (which merges a target starting with `.` or `"` into the prefill's closing `>`)."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def count(text: str) -> int:
        return len(ids(text))

    rows = []
    dropped = {"short_explanation": 0, "invalid_format": 0, "too_long": 0, "direct_too_long": 0}
    for ex in examples:
        target = sft_target(ex, count, run.max_reasoning_tokens, run.max_stimulus_tokens)
        if target is None:
            dropped["short_explanation"] += 1
            continue
        if not parse_completion(target).valid:
            dropped["invalid_format"] += 1
            continue
        prompt_ids = ids(prompt_for(tokenizer, ex, run.max_prompt_tokens))
        label_cont = ids(label_continuation(ex.task.label(ex.label).text))
        cut = target.index(COMMIT_TAG) + len(COMMIT_TAG)
        tail = target[cut:][len(label_continuation(ex.task.label(ex.label).text)):]
        reasoning = _row(prompt_ids, [(ids(target[:cut]), 1.0), (label_cont, run.label_weight),
                                      (ids(tail + tokenizer.eos_token), 1.0)])
        if len(reasoning["input_ids"]) > max_length:
            dropped["too_long"] += 1
            continue
        rows.append(reasoning)
        if run.direct_rows:
            direct = _row(prompt_ids + ids(commit_prefix("")), [(label_cont, run.label_weight)])
            if len(direct["input_ids"]) > max_length:
                dropped["direct_too_long"] += 1
            else:
                rows.append(direct)
    return rows, dropped


def main(argv: list[str] | None = None) -> Path:
    run, cfg = TrlParser((SFTRunArguments, ColdStartSFTConfig)).parse_args_and_config(argv)
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
    train = load_split(run.data_dir, "train", run.datasets)
    if run.prior_samples_per_dataset is not None:
        if run.samples_per_dataset is None:
            raise SystemExit("error: prior_samples_per_dataset needs samples_per_dataset (new examples per dataset)")
        examples = select_continuation(train, run.samples_per_dataset, cfg.seed, run.balanced,
                                       run.prior_samples_per_dataset, run.prior_seed)
    else:
        examples = select_examples(train, run.samples_per_dataset, cfg.seed, balanced=run.balanced)
    rows, dropped = sft_rows(tokenizer, examples, run, cfg.max_length)
    log.info("SFT rows: %d of %d examples; dropped %s", len(rows), len(examples), dropped)
    if not rows:
        raise SystemExit("error: no SFT rows left; raise max_length or check the data")

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, run.dtype))
    peft_config = None
    if run.adapter:  # continue an SFT adapter: its weights are the start, training goes on in them
        if run.merge_adapter:
            raise SystemExit("error: run_sft continues --adapter in place; merge_adapter: true is run_crpo's mode")
        model = PeftModel.from_pretrained(model, run.adapter, is_trainable=True)
        log.info("continuing the LoRA adapter %s", run.adapter)
    elif run.use_peft:
        peft_config = LoraConfig(task_type="CAUSAL_LM", r=run.lora_r, lora_alpha=run.lora_alpha,
                                 lora_dropout=run.lora_dropout, bias="none",
                                 target_modules=run.lora_target_modules or "all-linear")
    checkpoint = resume_checkpoint(out_dir, run.resume)
    jsonl = out_dir / "metrics.jsonl"
    cfg.remove_unused_columns = False  # keep `weights` for compute_loss
    cfg.dataset_kwargs = {**(cfg.dataset_kwargs or {}), "skip_prepare_dataset": True}  # rows are token ids
    validation = None
    if cfg.eval_every > 0:
        validation = validation_set(tokenizer, run.data_dir, sorted({e.dataset for e in examples}),
                                    cfg.eval_rows_per_dataset, run.max_prompt_tokens)
        log.info("validating the direct decision every %d steps on %d val rows", cfg.eval_every, len(validation[0]))
    trainer = ColdStartSFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft_config,
                                  data_collator=lambda batch: pad_rows(batch, tokenizer.pad_token_id),
                                  callbacks=[JsonlMetricsCallback(jsonl)], validation=validation)
    trainer.train(resume_from_checkpoint=checkpoint)
    best = trainer.validation.restore_best() if trainer.validation else None  # every process
    if best:
        log.info("final/ holds the weights of step %d (validation %.2f)", best["step"], best["score"])
    final_dir = out_dir / "final"
    if not trainer.is_world_process_zero():
        return final_dir

    metrics = final_metrics(read_jsonl(jsonl))
    record = {"run": dataclasses.asdict(run), "trainer": cfg.to_dict(), "model_source": str(model_path),
              "resumed_from": checkpoint, "global_step": trainer.state.global_step, "final_metrics": metrics, "sft_rows": len(rows),
              "selected_step": best["step"] if best else trainer.state.global_step,
              "validation": {"best": best, "history": trainer.validation.tracker.history} if trainer.validation else None,
              "dropped": dropped, "versions": versions()}
    lora = run.use_peft or bool(run.adapter)
    if lora and not run.merge_lora:
        def build(tmp: Path) -> None:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "mental_r1_run.json").write_text(json.dumps(record, indent=2, default=str))

        publish_folder(final_dir, build)
        log.info("LoRA adapter: %s", final_dir)
        return final_dir
    model = trainer.model.merge_and_unload() if lora else trainer.model
    card = {
        "model_name": f"Mental-R1 cold-start SFT ({Path(str(source)).name})",
        "summary": "Supervised cold start that teaches the five-stage appraisal format (training/run_sft.py); "
                   "the starting point for CRPO, not a finished assessor.",
        "base_model": str(model_path), "algorithm": "sft" + (" (LoRA, merged)" if lora else " (full)"),
        "data": f"{run.data_dir} — {', '.join(sorted({e.dataset for e in examples}))} (train split, IMHI "
                "explanations laid out across the stages)",
        "examples": str(len(rows)), "steps": str(trainer.state.global_step), "schedule": "n/a (no RL)",
        "settings": f"lr {cfg.learning_rate}, max_length {cfg.max_length}, reasoning budget "
                    f"{run.max_reasoning_tokens} tokens, label weight {run.label_weight}, direct rows {run.direct_rows}"
                    + (f", LoRA r {run.lora_r} alpha {run.lora_alpha}" if run.use_peft and not run.adapter else "")
                    + (f", continuing the adapter {run.adapter}" if run.adapter else ""),
        "versions": versions(), "metrics": metrics_table(metrics)}
    final = export_checkpoint(model, tokenizer, final_dir, record, card)
    log.info("final checkpoint: %s", final)
    return final


if __name__ == "__main__":
    main()
