"""Cold-start SFT on a tiny model (real TRL SFTTrainer steps on CPU): full fine-tuning, and LoRA merged."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.checkpoints import COMPLETE_MARKER
from training.run_log import read_jsonl

pytestmark = pytest.mark.slow


def run_sft(out: Path, data_dir: Path, *extra: str) -> Path:
    from training import run_sft

    return run_sft.main(["--model_name_or_path", "base", "--tiny_model", "true", "--data-dir", str(data_dir),
                         "--datasets", "DR", "SAD", "--samples_per_dataset", "2", "--max_prompt_tokens", "300",
                         "--max_stage_words", "3", "--max_length", "400", "--output_dir", str(out),
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
    assert record["sft_rows"] == 4 and record["global_step"] == 2
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
