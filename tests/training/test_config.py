from pathlib import Path

import pytest
from trl import TrlParser

from mental_r1.engine import native_bf16
from training.config import ALGORITHMS, CRPOConfig, RunArguments
from training.schedule import stage_betas

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def cfg(**kw) -> CRPOConfig:
    return CRPOConfig(output_dir="/tmp/crpo-test", use_cpu=True, bf16=False, report_to="none", **kw)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_algorithm_sets_the_trl_fields(algorithm):
    c = cfg(algorithm=algorithm)
    for key, value in ALGORITHMS[algorithm].items():
        assert getattr(c, key) == value
    assert c.epsilon == 0.2 and c.beta == 0.01 and c.num_generations == 4  # shared, from the paper
    paper = stage_betas()  # the default stages: not stimulus (0) nor mental_state (4)
    assert c.betas == ((0.0, *paper[1:4], 0.0) if algorithm == "crpo" else (0.0,) * 5)


def test_rejects_conflicts_and_double_entropy_and_completion_logging():
    with pytest.raises(ValueError, match="conflicts with algorithm='crpo'"):
        cfg(algorithm="crpo", loss_type="dapo")
    with pytest.raises(ValueError, match="unknown algorithm"):
        cfg(algorithm="ppo")
    with pytest.raises(ValueError, match="counted twice"):
        cfg(entropy_coef=0.01)
    with pytest.raises(ValueError, match="sensitive"):
        cfg(log_completions=True)
    with pytest.raises(ValueError, match="one per stage"):
        cfg(stage_betas=[0.1, 0.2])


def test_explicit_betas_and_cli_overrides_on_top_of_yaml():
    parser = TrlParser((RunArguments, CRPOConfig))
    run, c = parser.parse_args_and_config(
        ["--config", str(CONFIGS / "cpu_smoke.yaml"), "--algorithm", "dapo", "--data-dir", "/elsewhere",
         "--stage_betas", "0.1", "0", "0", "0", "-0.1"])
    assert run.tiny_model and run.data_dir == "/elsewhere"
    assert c.algorithm == "dapo" and c.loss_type == "dapo" and c.epsilon_high == 0.28
    assert c.betas == (0.0,) * 5  # only crpo applies the term
    assert c.stage_betas == [0.1, 0.0, 0.0, 0.0, -0.1]


@pytest.mark.parametrize("name", ["cpu_smoke.yaml", "cpu_smollm2.yaml"])
def test_cpu_configs_parse_with_cpu_settings(name):
    run, c = TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(["--config", str(CONFIGS / name)])
    assert c.use_cpu and not c.bf16 and not c.gradient_checkpointing and not c.use_vllm
    assert c.algorithm == "crpo" and run.datasets is None  # every dataset, mixed


def test_gpu_config_has_the_paper_settings():
    import yaml

    y = yaml.safe_load((CONFIGS / "gpu_qwen3_8b.yaml").read_text())
    assert (y["num_generations"], y["temperature"], y["top_p"], y["learning_rate"], y["beta"]) == (
        4, 0.85, 0.95, 5e-6, 0.01)
    assert y["max_prompt_tokens"] == y["max_completion_length"] == 512
    known = {f for cls in (RunArguments, CRPOConfig) for f in cls.__dataclass_fields__}
    assert set(y) <= known, set(y) - known
    acc = yaml.safe_load((CONFIGS / "accelerate_zero2.yaml").read_text())
    assert acc["distributed_type"] == "DEEPSPEED" and acc["deepspeed_config"]["zero_stage"] == 2


def test_recipe_fields_reject_bad_values_with_the_fix():
    with pytest.raises(ValueError, match="unknown reward"):
        cfg(reward="accuracy")
    with pytest.raises(ValueError, match="unknown stage.*choose from stimulus"):
        cfg(stage_term_stages=["reasoning"])
    with pytest.raises(ValueError, match="paired_steps needs ≥ 2 prompts per step.*set paired_steps: false"):
        cfg(per_device_train_batch_size=4, num_generations=4)
    assert cfg(per_device_train_batch_size=4, num_generations=4, paired_steps=False).prompts_per_step == 1
    with pytest.raises(ValueError, match="eval_every: 0 turns validation off"):
        cfg(eval_every=-1)
    with pytest.raises(ValueError, match="sum_then_normalize"):
        cfg(multi_objective_aggregation="normalize_then_sum")


def test_scale_rewards_is_the_recipe_except_for_dr_grpo():
    assert cfg(algorithm="crpo", scale_rewards="batch", label_prior="balanced").scale_rewards == "batch"
    assert cfg(algorithm="grpo", scale_rewards="batch", label_prior="balanced").scale_rewards == "batch"
    assert cfg(algorithm="dr_grpo", scale_rewards="batch").scale_rewards == "none"  # its definition
    assert cfg(algorithm="crpo", scale_rewards=False, label_prior="balanced").scale_rewards == "none"
    with pytest.raises(ValueError, match="scale_rewards: batch"):  # the prior weight would cancel
        cfg(reward="label_prob", label_prior="natural", scale_rewards="group")
    assert cfg(reward="answer_match", scale_rewards="group").label_prior == "natural"  # inert there: no error
    with pytest.raises(ValueError, match="unknown label_scoring"):
        cfg(label_scoring="hf")
    assert cfg().label_scoring == "engine"
    with pytest.raises(ValueError, match="unknown label_prior"):
        cfg(label_prior="uniform", scale_rewards="batch")
    with pytest.raises(ValueError, match="unknown step_order"):
        cfg(step_order="random")
    assert cfg().step_order == "shuffled" and cfg(step_order="round_robin").step_order == "round_robin"


def test_stage_term_stages_and_pairing():
    c = cfg(stage_term_stages=["reaction"], per_device_train_batch_size=8)
    paper = stage_betas()
    assert c.betas == (0.0, 0.0, 0.0, paper[3], 0.0)
    assert c.paired_steps and c.shuffle_dataset is False and c.prompts_per_step == 2  # TRL reads our order
    assert cfg(paired_steps=False).shuffle_dataset is True
    assert cfg(per_device_train_batch_size=16, tasks_per_step=2).tasks_per_step == 2  # 4 prompts: 2 tasks x 2
    with pytest.raises(ValueError, match="tasks_per_step 2 must divide the 2 prompts"):
        cfg(per_device_train_batch_size=8, tasks_per_step=2)


def test_v2_config_is_the_issue_19_recipe():
    run, c = TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(
        ["--config", str(CONFIGS / "crpo_smollm2_v2.yaml")])
    assert run.adapter and run.merge_adapter and run.balanced
    assert c.learning_rate <= 2e-5 and c.warmup_steps >= 20 and c.beta == 0.01
    assert c.reward == "label_prob" and c.paired_steps and c.prompts_per_step == 2
    assert c.skip_zero_signal_steps and not c.stage_term_on_zero_signal
    assert c.betas[0] == c.betas[4] == 0.0 and all(c.betas[1:4])  # not on stimulus nor mental_state
    assert run.max_prompt_tokens >= 1024  # posts whole, as the service sees them
    assert c.max_completion_length >= 210  # the v2 SFT targets run up to ~210 tokens
    assert (c.eval_every, c.eval_rows_per_dataset) == (30, 40) and c.num_iterations == 1
    assert c.scale_rewards == "batch" and c.label_prior == "natural"  # the second run's changes
    assert c.rollout == "vllm" and c.use_cpu and c.bf16 == native_bf16()  # autocast where the CPU has bf16


def test_v2_2_config_is_run_12_the_recipe_of_the_shipped_crpo_model():
    """crpo_smollm2_v2_2.yaml holds the flags run 12 (Mental-R1-135M 2.2.0) was launched with on top of v2's file."""
    run, c = TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(
        ["--config", str(CONFIGS / "crpo_smollm2_v2_2.yaml")])
    assert run.adapter == "runs/sft_v2/final" and run.merge_adapter and run.balanced and run.max_prompt_tokens == 1152
    assert (c.reward, c.label_prior, c.scale_rewards, c.step_order) == ("label_logprob", "balanced", "group", "round_robin")
    assert not c.loss_on_decision and c.stage_beta_m == 0.015 and c.beta == 0.01 and c.share_prompt
    assert (c.learning_rate, c.warmup_steps, c.gradient_accumulation_steps) == (5e-5, 10, 4)
    assert (c.max_completion_length, c.max_steps, c.eval_every, c.eval_rows_per_dataset) == (256, 60, 20, 40)
    assert c.paired_steps and c.skip_zero_signal_steps and c.betas[0] == c.betas[4] == 0.0


@pytest.mark.parametrize("name", ["cpu_smoke.yaml", "cpu_smollm2.yaml", "crpo_smollm2_lora.yaml"])
def test_older_configs_keep_the_first_recipe(name):
    run, c = TrlParser((RunArguments, CRPOConfig)).parse_args_and_config(["--config", str(CONFIGS / name)])
    assert c.reward == "answer_match" and not c.paired_steps and not c.skip_zero_signal_steps
    assert c.betas == stage_betas() and c.stage_term_on_zero_signal and c.eval_every == 0 and not run.balanced
    assert c.scale_rewards == ("none" if c.algorithm == "dr_grpo" else "group")
    assert run.merge_adapter == (name != "crpo_smollm2_lora.yaml")


def test_training_autocast_only_where_bf16_is_native(monkeypatch):
    from types import SimpleNamespace

    from training import config

    monkeypatch.setattr(config, "native_bf16", lambda: False)
    args = SimpleNamespace(bf16=True, use_cpu=True)
    config.bf16_where_native(args)
    assert args.bf16 is False
    monkeypatch.setattr(config, "native_bf16", lambda: True)
    args = SimpleNamespace(bf16=True, use_cpu=True)
    config.bf16_where_native(args)
    assert args.bf16 is True
    gpu = SimpleNamespace(bf16=True, use_cpu=False)  # GPUs are not this function's business
    monkeypatch.setattr(config, "native_bf16", lambda: False)
    config.bf16_where_native(gpu)
    assert gpu.bf16 is True
