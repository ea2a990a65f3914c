"""Cold-start SFT on a tiny model (real TRL SFTTrainer steps on CPU): full fine-tuning, and LoRA merged."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mental_r1.engine import native_bf16
from training.checkpoints import COMPLETE_MARKER
from training.run_log import read_jsonl

pytestmark = pytest.mark.slow


def run_sft(out: Path, data_dir: Path, *extra: str) -> Path:
    from training import run_sft

    return run_sft.main(["--model_name_or_path", "base", "--tiny_model", "true", "--data-dir", str(data_dir),
                         "--datasets", "DR", "SAD", "--samples_per_dataset", "2", "--max_prompt_tokens", "300",
                         "--max_reasoning_tokens", "20", "--max_length", "400", "--output_dir", str(out),
                         "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "0.01",
                         "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--logging_steps", "1",
                         "--save_strategy", "steps", "--save_steps", "2", "--seed", "0", *extra])


def test_full_sft(tmp_path, data_dir):
    from transformers import AutoModelForCausalLM

    final = run_sft(tmp_path, data_dir)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(x > 0 for x in losses)
    before, after = load_file(tmp_path / "tiny_init" / "model.safetensors"), load_file(final / "model.safetensors")
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "checkpoint-2" / COMPLETE_MARKER).is_file()
    record = json.loads((final / "mental_r1_run.json").read_text())
    # 2 examples of each of 2 datasets; explanations of fewer than three sentences give no row
    assert record["sft_rows"] + sum(record["dropped"].values()) == 4 and record["sft_rows"] >= 1, record["dropped"]
    assert record["global_step"] == 2
    assert "sft (full)" in (final / "README.md").read_text()
    AutoModelForCausalLM.from_pretrained(final)


def test_lora_sft_merges_into_a_full_checkpoint(tmp_path, data_dir):
    from transformers import AutoModelForCausalLM

    final = run_sft(tmp_path, data_dir, "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8")
    assert not (final / "adapter_config.json").exists()  # merged: a plain checkpoint
    before, after = load_file(tmp_path / "tiny_init" / "model.safetensors"), load_file(final / "model.safetensors")
    assert set(before) == set(after)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[q], after[q])  # the adapter's update is in the merged weights
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])  # not adapted
    AutoModelForCausalLM.from_pretrained(final)



def test_sft_validates_the_direct_decision_and_keeps_the_best_weights(tmp_path, data_dir):
    """eval_every 1: validations at the start and after each step, logged as val/ rows; the best weights in
    best/ and final/ built from them (an adapter here: merge_lora false)."""
    from training.validation import BEST_DIR, HISTORY_FILE, SCORE

    final = run_sft(tmp_path, data_dir, "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
                    "--merge_lora", "false", "--eval_every", "1", "--eval_rows_per_dataset", "3")
    vals = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if SCORE in r]
    assert [r["step"] for r in vals] == [0, 1, 2]
    assert all(0 <= r[SCORE] <= 100 and {"val/weighted_f1/DR", "val/weighted_f1/SAD"} <= set(r) for r in vals)
    assert all(0 <= r["val/binary/pred_yes"] <= 1 for r in vals)  # DR is yes/no: the collapse check is logged
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    best = max(history["history"], key=lambda h: h["score"])  # the first of equals is kept
    assert history["best"]["step"] == best["step"]
    assert json.loads((tmp_path / BEST_DIR / "best.json").read_text())["step"] == best["step"]
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert record["selected_step"] == best["step"] and (final / "adapter_config.json").exists()
    saved = load_file(final / "adapter_model.safetensors")  # peft's names: no adapter name
    kept = {k.replace(".default", ""): v for k, v in load_file(tmp_path / BEST_DIR / "trainable.safetensors").items()}
    assert set(kept) == set(saved) and all(torch.equal(saved[k], kept[k]) for k in saved)

def test_sft_continues_an_adapter_on_new_examples(tmp_path, data_dir):
    """--adapter: the start is the earlier run's adapter (its step-0 validation is that run's best score), the
    training goes on in the same adapter (same tensors, new values), on examples the earlier run did not see."""
    from training.validation import HISTORY_FILE

    lora = ("--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--merge_lora", "false",
            "--eval_every", "1", "--eval_rows_per_dataset", "3")
    first = run_sft(tmp_path / "a", data_dir, *lora)
    cont = run_sft(tmp_path / "b", data_dir, *lora, "--adapter", str(first), "--prior_samples_per_dataset", "2",
                   "--prior_seed", "0", "--learning_rate", "0.05")
    best = json.loads((tmp_path / "a" / HISTORY_FILE).read_text())["best"]["score"]
    start = json.loads((tmp_path / "b" / HISTORY_FILE).read_text())["history"][0]
    assert start["step"] == 0 and start["score"] == pytest.approx(best)
    before, after = load_file(first / "adapter_model.safetensors"), load_file(cont / "adapter_model.safetensors")
    assert set(before) == set(after) and all(before[k].shape == after[k].shape for k in before)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    record = json.loads((cont / "mental_r1_run.json").read_text())
    assert record["run"]["adapter"] == str(first) and record["run"]["prior_samples_per_dataset"] == 2
    with pytest.raises(SystemExit, match="in place"):
        run_sft(tmp_path / "c", data_dir, *lora, "--adapter", str(first), "--merge_adapter", "true")


def test_sft_rows_are_the_prompt_ids_followed_by_the_target_ids(tokenizer):
    from mental_r1.data import Example
    from mental_r1.tasks import get_task
    from training.prompts import prompt_for
    from training.run_sft import SFTRunArguments, sft_rows

    # a post whose first sentence starts with '"' makes the stimulus target start with it: re-tokenising
    # prompt + target would merge it with the prefill's closing '>' (TRL's "not a prefix" warning)
    ex = Example("DR", get_task("DR"), '"Nobody cares." That is what I keep hearing.', "yes",
                 "The poster feels unheard. They repeat a hurtful phrase. They sound hopeless.")
    run = SFTRunArguments(max_prompt_tokens=320)
    (row,), dropped = sft_rows(tokenizer, [ex], run, max_length=480)
    assert dropped == {"short_explanation": 0, "invalid_format": 0, "too_long": 0, "direct_too_long": 0}
    prompt_ids = tokenizer(prompt_for(tokenizer, ex, 320), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert row["input_ids"][:n] == prompt_ids and row["labels"][:n] == [-100] * n
    assert row["labels"][n:] == row["input_ids"][n:] and row["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(row["input_ids"][n:]).startswith('"Nobody cares." That is what I keep hearing.</stimulus>')
    assert sft_rows(tokenizer, [ex], run, max_length=n + 5)[1]["too_long"] == 1


def test_label_tokens_are_weighted_and_tokenized_as_the_service_scores_them(tokenizer):
    from mental_r1.contract import COMMIT_TAG, commit_prefix, label_continuation
    from mental_r1.data import Example
    from mental_r1.tasks import get_task
    from training.prompts import prompt_for
    from training.run_sft import SFTRunArguments, sft_rows

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    ex = Example("DR", get_task("DR"), "I lost my job. Nothing helps.", "no",
                 "The poster lost a job. They seem calm. They plan next steps.")
    run = SFTRunArguments(max_prompt_tokens=320, label_weight=4.0, direct_rows=True)
    (reasoning, direct), _ = sft_rows(tokenizer, [ex], run, max_length=480)
    cont = ids(label_continuation("No, the poster does not suffer from depression."))
    prompt = ids(prompt_for(tokenizer, ex, 320))
    # the label continuation follows the reasoning's own tokens, exactly as the service appends it
    heavy = [i for i, w in enumerate(reasoning["weights"]) if w == 4.0]
    assert [reasoning["input_ids"][i] for i in heavy] == cont
    before = reasoning["input_ids"][len(prompt):heavy[0]]
    assert tokenizer.decode(before).endswith(COMMIT_TAG)
    assert set(reasoning["weights"][:len(prompt)]) == {0.0}
    assert {w for i, w in enumerate(reasoning["weights"]) if i >= len(prompt) and i not in heavy} == {1.0}
    # the direct row: prompt + an empty reasoning's commit point, then the label continuation only
    assert direct["input_ids"] == prompt + ids(commit_prefix("")) + cont
    assert direct["labels"] == [-100] * (len(direct["input_ids"]) - len(cont)) + cont
    assert direct["weights"][-len(cont):] == [4.0] * len(cont)


def test_weighted_loss_is_the_weighted_mean_of_token_losses(tmp_path, base_model_dir):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from training.models import build_tiny_model
    from training.run_sft import ColdStartSFTTrainer, pad_rows

    path = build_tiny_model(base_model_dir, tmp_path / "tiny", seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9], "weights": [0.0, 0.0, 1.0, 3.0, 1.0]},
            {"input_ids": [11, 12, 13], "labels": [-100, 12, 13], "weights": [0.0, 1.0, 2.0]}]
    cfg = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none", max_length=None,
                    remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})
    trainer = ColdStartSFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                                  processing_class=AutoTokenizer.from_pretrained(path),
                                  data_collator=lambda b: pad_rows(b, 0))
    batch = pad_rows(rows, 0)
    assert batch["input_ids"].shape == (2, 5) and batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels, weights = batch["labels"][:, 1:], batch["weights"][:, 1:]
    token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                              ignore_index=-100, reduction="none")
    expected = (token * weights.reshape(-1)).sum() / weights.sum()  # target weights 1+3+1 and 1+2
    assert weights.sum().item() == 8.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_completion_only_loss_equals_the_full_logits_loss(tmp_path, base_model_dir):
    """ColdStartSFTTrainer.compute_loss (LM head on completion positions only) = the mean next-token cross
    entropy over the labelled positions computed from the model's full logits."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from training.models import build_tiny_model
    from training.run_sft import ColdStartSFTTrainer

    path = build_tiny_model(base_model_dir, tmp_path / "tiny", seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]},
            {"input_ids": [11, 12, 13, 14], "labels": [-100, -100, 13, 14]}]
    cfg = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none", max_length=None)
    trainer = ColdStartSFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                                  processing_class=AutoTokenizer.from_pretrained(path))
    batch = trainer.data_collator(rows)
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                 ignore_index=-100)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert trainer._metrics["train"]["mean_token_accuracy"]  # the cheap metric is still logged


def test_the_shipped_recipe_config_parses():
    """The config of the shipped adapter (named in its manifest) must stay runnable as the code evolves."""
    from trl import TrlParser

    from training.run_sft import ColdStartSFTConfig, SFTRunArguments

    config = Path(__file__).resolve().parents[2] / "training" / "configs" / "sft_smollm2_v2.yaml"
    run, cfg = TrlParser((SFTRunArguments, ColdStartSFTConfig)).parse_args_and_config(["--config", str(config)])
    assert run.direct_rows and run.label_weight > 1 and run.max_reasoning_tokens
    assert run.use_peft and not run.merge_lora and cfg.bf16 == native_bf16() and cfg.eval_every > 0


def test_the_continuation_config_parses():
    from trl import TrlParser

    from training.run_sft import ColdStartSFTConfig, SFTRunArguments

    config = Path(__file__).resolve().parents[2] / "training" / "configs" / "sft_smollm2_v2_3.yaml"
    run, cfg = TrlParser((SFTRunArguments, ColdStartSFTConfig)).parse_args_and_config(["--config", str(config)])
    assert run.adapter and not run.merge_adapter and not run.merge_lora
    assert run.prior_samples_per_dataset == 400 and run.prior_seed == 42 and cfg.seed != run.prior_seed
    assert run.direct_rows and run.label_weight > 1 and cfg.eval_every > 0
