"""CRPOTrainer's v2 recipe on a tiny random model, real TRL steps (fast: seconds each)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mental_r1.contract import STAGE_NAMES
from training.run_log import read_jsonl

REPO = Path(__file__).resolve().parents[2]
V2 = REPO / "training" / "configs" / "crpo_smollm2_v2.yaml"


def trainer_on(tiny_dir: Path, out: Path, reward_funcs=None, **settings):
    """A CRPOTrainer on the tiny model whose only reward is the format reward: a random model never writes the
    format, so every group's rewards tie and no completion carries reward signal."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.config import CRPOConfig
    from training.crpo_trainer import CRPOTrainer
    from training.rewards import format_reward

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = CRPOConfig(**{"output_dir": str(out), "use_cpu": True, "bf16": False, "report_to": "none",
                        "per_device_train_batch_size": 4, "max_completion_length": 8, "max_steps": 1,
                        "learning_rate": 0.05, "gradient_checkpointing": False, "save_strategy": "no",
                        "paired_steps": False, "eval_every": 0, "logging_steps": 1, "disable_tqdm": True,
                        "stage_term_stages": list(STAGE_NAMES)} | settings)
    return CRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32),
                       reward_funcs=reward_funcs or [format_reward], args=cfg, processing_class=tok,
                       train_dataset=Dataset.from_list([{"prompt": "<|im_start|>user\nHello<|im_end|>\n"}] * 4))


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_a_step_without_reward_signal_moves_nothing(tiny_dir, tmp_path):
    trainer = trainer_on(tiny_dir, tmp_path / "skip")
    before = weights(trainer.model)
    trainer.train()
    row = next(r for r in trainer.state.log_history if "loss" in r)
    assert row["frac_reward_zero_std"] == 1.0 and row["crpo/skipped_step"] == 1.0
    assert row["crpo/stage_term"] == 0.0  # the term leaves out groups without signal
    assert row["kl"] is not None  # beta 0.01: TRL logs the KL to the reference every step
    after = weights(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not trainer.optimizer.state  # AdamW never ran: no momentum to move the weights later


def test_the_stage_term_may_act_alone_when_configured(tiny_dir, tmp_path):
    trainer = trainer_on(tiny_dir, tmp_path / "alone", stage_term_on_zero_signal=True)
    before = weights(trainer.model)
    trainer.train()
    row = next(r for r in trainer.state.log_history if "loss" in r)
    assert row["crpo/skipped_step"] == 0.0 and row["crpo/stage_term"] != 0.0
    after = weights(trainer.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize("apply", [True, False])
def test_decision_neutral_replaces_the_advantages_by_their_residual(tiny_dir, tmp_path, apply):
    from training.advantages import decision_neutral
    from training.rewards import LabelProbReward, format_reward

    scorer = LabelProbReward(log=True)
    trainer = trainer_on(tiny_dir, tmp_path / "neutral", reward_funcs=[format_reward, scorer],
                         reward="label_logprob", decision_neutral=apply)
    trainer.model.train()
    scorer.last_direction = [2.0, -1.0, 0.5, -1.5]  # one group of 4 (num_generations 4): as the reward leaves it
    advantages = torch.tensor([-1.2, 0.9, -0.1, 0.4])
    batch = {"advantages": advantages.clone()}
    trainer._neutralise_decision(batch)
    expected, fit = decision_neutral(advantages, torch.tensor(scorer.last_direction), 4, apply=apply)
    torch.testing.assert_close(batch["advantages"], expected)
    assert fit.slope < 0 and trainer._metrics["train"]["crpo/decision/slope"] == [pytest.approx(fit.slope)]
    if apply:
        assert not torch.allclose(batch["advantages"], advantages)
    else:
        torch.testing.assert_close(batch["advantages"], advantages)


def test_the_null_control_hands_trl_each_groups_rewards_in_a_random_order(tiny_dir, tmp_path):
    def ranked(completions, **_):  # a distinct reward per completion: 0, 1, 2, 3
        return [float(i) for i in range(len(completions))]

    def rewards(**settings):
        trainer = trainer_on(tiny_dir, tmp_path / "null", reward_funcs=[ranked], **settings)
        trainer.model.train()
        got = trainer._calculate_rewards([{"prompt": "p"}] * 8, ["p"] * 8, ["c"] * 8, [[1]] * 8)
        return got[:, 0].tolist()

    assert rewards() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    permuted = rewards(null_control=True, seed=3)
    assert sorted(permuted[:4]) == [0.0, 1.0, 2.0, 3.0] and sorted(permuted[4:]) == [4.0, 5.0, 6.0, 7.0]
    assert permuted != rewards()
    assert permuted == rewards(null_control=True, seed=3)  # seeded


def sft_adapter(tiny_dir: Path, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32),
                   LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                              task_type="CAUSAL_LM")).save_pretrained(folder)
    return folder


def run_v2(tiny_dir: Path, sft: Path, data_dir: Path, out: Path, *extra: str) -> Path:
    """The v2 config as it will run (SFT adapter merged, fresh adapter, label_prob, paired steps, validation) on
    the tiny model with TRL's own rollout: short completions, validation at every step on 2 rows per dataset."""
    from training import run_crpo

    return run_crpo.main(["--config", str(V2), "--model_name_or_path", str(tiny_dir), "--adapter", str(sft),
                          "--data-dir", str(data_dir), "--datasets", "DR", "dreaddit", "--samples_per_dataset", "4",
                          "--output_dir", str(out), "--rollout", "transformers", "--bf16", "false",
                          "--max_completion_length", "16", "--learning_rate", "0.05", "--warmup_steps", "0",
                          "--eval_every", "1", "--eval_rows_per_dataset", "2", "--disable_tqdm", "true",
                          "--eval_start_cache", str(out.parent / "start-validation"), *extra])


def test_v2_recipe_end_to_end_on_a_tiny_model(tiny_dir, tmp_path, data_dir):
    sft = sft_adapter(tiny_dir, tmp_path / "sft")
    out = tmp_path / "run"
    # 4 val rows per dataset: the first 2 of DR and of dreaddit are all "yes", which has no AUROC
    final = run_v2(tiny_dir, sft, data_dir, out, "--max_steps", "2", "--save_strategy", "no", "--eval_rows_per_dataset", "4")
    rows = read_jsonl(out / "metrics.jsonl")
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert r["kl"] is not None and "frac_reward_zero_std" in r and "crpo/skipped_step" in r
        assert 0 <= r["rewards/label_prob/mean"] <= 1 and 0 < r["crpo/binary/p_yes"] < 1
        assert r["crpo/binary/gold_yes"] == 0.5  # paired: one "yes" and one "no" prompt in every step
        assert sum(k.startswith("crpo/reward/") for k in r) == 1  # one task a step
        assert all(f"crpo/entropy/{n}" in r for n in STAGE_NAMES)
        assert "crpo/decision/slope" in r and 0 <= r["crpo/decision/share"] <= 1  # logged with it off, too
    val = [r for r in rows if "val/avg_weighted_f1" in r]
    assert [r["step"] for r in val] == [0, 1, 2]  # the start, then every step
    assert all({"val/weighted_f1/DR", "val/weighted_f1/dreaddit", "val/binary/pred_yes", "val/binary/gold_yes"} <= set(r)
               for r in val)
    history = json.loads((out / "validation.json").read_text())
    best = json.loads((out / "best" / "best.json").read_text())
    assert [h["step"] for h in history["history"]] == [0, 1, 2] and history["best"]["step"] == best["step"]

    # final/ is one adapter on the base: the SFT adapter (r 4) and the best validation's RL adapter (r 16) stacked
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert record["selected_step"] == best["step"] and record["validation"]["best"]["step"] == best["step"]
    shipped = load_file(final / "adapter_model.safetensors")
    sft_w, rl_best = load_file(sft / "adapter_model.safetensors"), load_file(out / "best" / "trainable.safetensors")
    key = next(k for k in sft_w if ".lora_B." in k)
    assert shipped[key].shape[1] == 4 + 16
    torch.testing.assert_close(shipped[key][:, :4], 2.0 * sft_w[key])  # alpha 8 / r 4
    rl_key = next(k for k in rl_best if k.replace(".default.", ".") == key)
    torch.testing.assert_close(shipped[key][:, 4:], 2.0 * rl_best[rl_key])  # alpha 32 / r 16, from best/
    assert all({"val/auroc/DR", "val/auroc/dreaddit", "val/avg_auroc"} <= set(r) for r in val)

    # --validate_only measures final/ as a start: the best validation's numbers again, and no training
    again = run_v2(tiny_dir, final, data_dir, tmp_path / "again", "--validate_only", "true", "--eval_rows_per_dataset", "4")
    measured = json.loads(again.read_text())
    best_row = next(r for r in val if r["step"] == best["step"])
    assert measured["val/avg_weighted_f1"] == pytest.approx(best_row["val/avg_weighted_f1"])
    assert measured["val/avg_auroc"] == pytest.approx(best_row["val/avg_auroc"], abs=1e-6)
    assert not (tmp_path / "again" / "metrics.jsonl").exists() and not (tmp_path / "again" / "final").exists()


def test_v2_resume_continues_the_validation_history(tiny_dir, tmp_path, data_dir):
    sft = sft_adapter(tiny_dir, tmp_path / "sft")
    out = tmp_path / "run"
    neutral = ("--decision_neutral", "true")  # real TRL steps with the residual advantages
    run_v2(tiny_dir, sft, data_dir, out, "--max_steps", "2", "--save_steps", "1", *neutral)
    final = run_v2(tiny_dir, sft, data_dir, out, "--max_steps", "3", "--save_steps", "1", "--resume", "true", *neutral)
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert Path(record["resumed_from"]).name == "checkpoint-2" and record["global_step"] == 3
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert [r["step"] for r in rows if "val/avg_weighted_f1" in r] == [0, 1, 2, 3]  # step 2 not validated twice
    assert [h["step"] for h in record["validation"]["history"]] == [0, 1, 2, 3]


def test_merged_start_gives_trl_a_new_adapter_whose_reference_is_the_sft_model(tiny_dir, tmp_path, data_dir):
    from training import run_crpo

    sft = sft_adapter(tiny_dir, tmp_path / "sft")
    run, cfg = run_crpo.parse(["--config", str(V2), "--model_name_or_path", str(tiny_dir), "--adapter", str(sft),
                               "--data-dir", str(data_dir), "--datasets", "DR", "--samples_per_dataset", "4",
                               "--output_dir", str(tmp_path / "run"), "--rollout", "transformers", "--bf16", "false",
                               "--eval_every", "0"])
    trainer, about = run_crpo.build_trainer(run, cfg)
    model = trainer.model
    assert list(model.peft_config) == ["default"] and trainer.ref_model is None  # TRL: reference = adapter off
    assert model.peft_config["default"].r == 16 and trainer.beta == 0.01
    assert all(p.requires_grad == (".lora_" in n) for n, p in model.named_parameters())
    assert trainer.validation is None and len(about["examples"]) == 4
    assert [e.label for e in about["examples"]].count("yes") == 2  # balanced pool, paired order


def test_the_start_is_validated_once_for_runs_from_the_same_start(tiny_dir, tmp_path, data_dir):
    """Runs from one SFT start (another seed draws another fresh LoRA A, with B still 0) read the first run's
    step-0 validation back; it is what a new measurement gives; another completion length is measured anew."""
    sft = sft_adapter(tiny_dir, tmp_path / "sft")

    def start_row(name: str, *extra: str) -> dict:
        run_v2(tiny_dir, sft, data_dir, tmp_path / name, "--max_steps", "1", "--save_strategy", "no", *extra)
        return next(r for r in read_jsonl(tmp_path / name / "metrics.jsonl") if r["step"] == 0 and "val/seconds" in r)

    first = start_row("first", "--seed", "1")
    again = start_row("again", "--seed", "2")
    measured = start_row("measured", "--seed", "2", "--eval_start_cache", "")
    other = start_row("other", "--seed", "2", "--max_completion_length", "12")
    assert first["val/cached"] == 0.0 and again["val/cached"] == 1.0 and other["val/cached"] == 0.0
    assert "val/cached" not in measured  # the cache is off
    ignore = {"val/cached", "val/seconds"}
    assert {k: v for k, v in again.items() if k not in ignore} == {k: v for k, v in first.items() if k not in ignore}
    assert {k: pytest.approx(v) for k, v in measured.items() if k.startswith("val/") and k not in ignore} == \
        {k: v for k, v in first.items() if k.startswith("val/") and k not in ignore}
    assert len(list((tmp_path / "start-validation").glob("*.json"))) == 2
