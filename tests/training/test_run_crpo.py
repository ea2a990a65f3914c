"""Real TRL steps on a tiny model (CPU): the cpu_smoke config for every algorithm, checkpoints, resume, vLLM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mental_r1.contract import STAGE_NAMES, format_completion
from mental_r1.engine import native_bf16
from training.checkpoints import COMPLETE_MARKER
from training.label_scoring import LabelScorer
from training.run_log import read_jsonl
from training.validation import argmax_label

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "training" / "configs" / "cpu_smoke.yaml"
pytestmark = pytest.mark.slow


def run_crpo(out: Path, data_dir: Path, *extra: str) -> Path:
    from training import run_crpo

    return run_crpo.main(["--config", str(SMOKE), "--output_dir", str(out), "--data-dir", str(data_dir), *extra])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    run_crpo(out, data_dir)
    return out


def test_smoke_crpo_trains_logs_and_exports(smoke):
    final = smoke / "final"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json", "mental_r1_run.json", "README.md"):
        assert (final / name).is_file(), name
    rows = [r for r in read_jsonl(smoke / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["crpo/entropy/stimulus"] > 0  # generation starts inside the pre-filled stimulus stage
        assert r["crpo/stage_term"] < 0  # an untrained model only writes stimulus, whose beta is negative
        assert all(f"crpo/entropy/{n}" in r for n in STAGE_NAMES)
    before, after = weights(smoke / "tiny_init"), weights(final)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, unchanged
    assert (smoke / "checkpoint-2" / COMPLETE_MARKER).is_file()
    assert (smoke / "metrics.png").stat().st_size > 0
    card = (final / "README.md").read_text()
    assert "crpo" in card and "-0.0592" in card and "$" not in card
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert record["global_step"] == 2 and record["trainer"]["loss_type"] == "grpo"


def test_transformers_loads_the_final_checkpoint(smoke):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smoke / "final")
    model = AutoModelForCausalLM.from_pretrained(smoke / "final")
    assert tok.chat_template and model.generation_config.temperature == 0.85
    out = model.generate(**tok("hello", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == tok("hello", return_tensors="pt")["input_ids"].shape[1] + 3


def test_vllm_loads_the_final_checkpoint(smoke, tmp_path):
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    # files, not pipes: a vLLM engine process that outlives the script would keep a pipe open
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("vllm_load.py")), str(smoke / "final")],
                              cwd=REPO, env=env, stdout=out, stderr=err, timeout=400, check=False)
    assert proc.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    results = [line for line in (tmp_path / "out").read_text().splitlines() if line.startswith('{"n_tokens"')]
    assert results and json.loads(results[-1]) == {"n_tokens": 8}


@pytest.mark.parametrize("algorithm,loss_type", [("grpo", "grpo"), ("dapo", "dapo"), ("dr_grpo", "dr_grpo")])
def test_baselines_run_under_the_same_harness(tmp_path, data_dir, algorithm, loss_type):
    final = run_crpo(tmp_path, data_dir, "--algorithm", algorithm, "--max_steps", "1", "--save_strategy", "no")
    rows = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 1 and "crpo/entropy/stimulus" in rows[0]
    if algorithm == "dapo" and rows[0]["completions/clipped_ratio"] == 1:
        assert rows[0]["crpo/entropy/stimulus"] is None  # overlong filtering masks every truncated completion
    else:
        assert rows[0]["crpo/entropy/stimulus"] > 0
    assert rows[0]["crpo/stage_term"] == 0  # all betas are 0: the term is not part of a baseline's loss
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert record["trainer"]["loss_type"] == loss_type and record["stage_betas"] == [0.0] * 5
    # A random model never writes the format: every completion of a prompt gets the same reward, so the
    # advantages (and the baselines' loss) are 0 and the weights stay put. This is why small models need the
    # cold-start SFT; test_each_algorithm_loss_updates_every_parameter checks the update itself.
    if rows[0]["frac_reward_zero_std"] == 1.0:
        before, after = weights(tmp_path / "tiny_init"), weights(final)
        assert all(torch.equal(before[k], after[k]) for k in before)


def hand_made_batch(trainer, tokenizer):
    """Four completions of one prompt in the contract's format (with EOS): "yes" twice at +1, "no" twice at -1."""
    from training.prompts import build_prompt
    from training.stage_masks import stage_index_batch

    prompt = build_prompt(tokenizer, "I cannot sleep.", "Does the poster suffer from depression?", ["yes", "no"])
    texts = [format_completion({n: f"{n} words here" for n in STAGE_NAMES}, a) + tokenizer.eos_token
             for a in ("yes", "no")]
    p = tokenizer([prompt] * 4, add_special_tokens=False, return_tensors="pt")
    c = tokenizer([texts[0], texts[1], texts[1], texts[0]], add_special_tokens=False, return_tensors="pt",
                  padding=True, padding_side="right")
    batch = {"prompt_ids": p["input_ids"], "prompt_mask": p["attention_mask"], "completion_ids": c["input_ids"],
             # "yes" completions +1, "no" completions -1 (rows 0/3 and 1/2 are the same text: advantages of
             # opposite sign on identical rows would cancel, leaving only floating-point noise as the gradient)
             "completion_mask": c["attention_mask"], "advantages": torch.tensor([1.0, -1.0, -1.0, 1.0]),
             "num_items_in_batch": c["attention_mask"].sum()}
    with torch.no_grad():
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        batch["ref_per_token_logps"] = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model, ids, att, ids.size(1) - p["input_ids"].size(1))[0]
    batch["crpo_stage"] = stage_index_batch(tokenizer, batch["completion_ids"], batch["completion_mask"])
    return batch


def make_trainer(folder: Path, out: Path, algorithm: str):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.config import CRPOConfig
    from training.crpo_trainer import CRPOTrainer
    from training.rewards import format_reward

    tok = AutoTokenizer.from_pretrained(folder)
    cfg = CRPOConfig(output_dir=str(out), algorithm=algorithm, use_cpu=True, bf16=False, report_to="none",
                     per_device_train_batch_size=4, max_completion_length=64, gradient_checkpointing=False,
                     paired_steps=False)
    trainer = CRPOTrainer(model=AutoModelForCausalLM.from_pretrained(folder), reward_funcs=[format_reward],
                          args=cfg, train_dataset=Dataset.from_list([{"prompt": "x"}] * 4), processing_class=tok)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); we call the loss directly
    return trainer, tok


@pytest.mark.parametrize("algorithm", ["crpo", "grpo", "dapo", "dr_grpo"])
def test_each_algorithm_loss_updates_every_parameter(smoke, tmp_path, algorithm):
    trainer, tok = make_trainer(smoke / "tiny_init", tmp_path, algorithm)
    batch = hand_made_batch(trainer, tok)
    assert set(batch["crpo_stage"][0].tolist()) == {-1, 0, 1, 2, 3, 4}
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    no_grad = [n for n, p in trainer.model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, no_grad
    assert {f"crpo/entropy/{n}" for n in STAGE_NAMES} <= set(trainer._metrics["train"])


def test_crpo_loss_is_grpo_loss_plus_the_stage_term(smoke, tmp_path):
    from training.entropy import stage_entropy_term

    trainer, tok = make_trainer(smoke / "tiny_init", tmp_path, "crpo")
    batch = hand_made_batch(trainer, tok)
    with torch.no_grad():
        crpo = trainer._compute_loss(trainer.model, batch)
        betas = trainer.stage_betas.clone()
        trainer.stage_betas = torch.zeros_like(betas)
        grpo = trainer._compute_loss(trainer.model, batch)
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        _, H, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, att, batch["completion_ids"].size(1), compute_entropy=True)
    expected = stage_entropy_term(H, batch["crpo_stage"], batch["completion_mask"], betas)
    assert expected.abs() > 1e-3
    assert (crpo - grpo).item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


def test_resume_after_sigkill(tmp_path, data_dir):
    out = tmp_path / "run"
    cmd = [sys.executable, "training/run_crpo.py", "--config", str(SMOKE), "--output_dir", str(out),
           "--data-dir", str(data_dir), "--max_steps", "3", "--save_steps", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (out / "checkpoint-1" / COMPLETE_MARKER).exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "final").exists()
    final = run_crpo(out, data_dir, "--max_steps", "3", "--save_steps", "1", "--resume")
    record = json.loads((final / "mental_r1_run.json").read_text())
    assert record["resumed_from"] and Path(record["resumed_from"]).name.startswith("checkpoint-")
    assert record["global_step"] == 3
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3]  # no step logged twice


def test_crpo_continues_a_lora_adapter_and_saves_an_adapter(tmp_path, data_dir, smoke):
    """--adapter with merge_adapter false: CRPO trains the cold-start SFT's LoRA adapter further (beta 0), and final/
    is that adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = smoke / "tiny_init"
    sft = tmp_path / "sft_adapter"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                     task_type="CAUSAL_LM")).save_pretrained(sft)
    with pytest.raises(SystemExit, match="set merge_adapter: true"):
        run_crpo(tmp_path / "kl", data_dir, "--model_name_or_path", str(base), "--tiny_model", "false",
                 "--adapter", str(sft), "--merge_adapter", "false", "--beta", "0.01")
    out = tmp_path / "run"
    final = run_crpo(out, data_dir, "--model_name_or_path", str(base), "--tiny_model", "false",
                     "--adapter", str(sft), "--merge_adapter", "false", "--beta", "0.0", "--learning_rate", "0.05")
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    before, after = load_file(sft / "adapter_model.safetensors"), load_file(final / "adapter_model.safetensors")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapter itself was trained


def test_vllm_rollout_trains_a_lora_policy_and_samples_from_its_current_weights(tmp_path, data_dir, smoke):
    """rollout: vllm (training/rollout.py): the in-process engine is reloaded with the merged policy after every
    optimizer step, and then scores tokens like the policy itself (bf16 vs fp32 tolerance), not like the start."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import SamplingParams

    from training import run_crpo as entry
    from training.rollout import merged_weights

    # a random tiny model's next-token distribution is almost uniform (log-probs ≈ −ln V whatever the weights):
    # larger (tied) embeddings give it logits that visibly move when the policy does
    base = tmp_path / "base"
    start = AutoModelForCausalLM.from_pretrained(smoke / "tiny_init", dtype=torch.float32)
    with torch.no_grad():
        start.get_input_embeddings().weight.mul_(30)
    start.save_pretrained(base)
    AutoTokenizer.from_pretrained(smoke / "tiny_init").save_pretrained(base)
    sft = tmp_path / "sft_adapter"
    get_peft_model(start, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                     task_type="CAUSAL_LM")).save_pretrained(sft)
    run, cfg = entry.parse(["--config", str(SMOKE), "--output_dir", str(tmp_path / "run"), "--data-dir",
                            str(data_dir), "--model_name_or_path", str(base), "--tiny_model", "false", "--adapter",
                            str(sft), "--merge_adapter", "false", "--beta", "0.0", "--learning_rate", "0.05",
                            "--rollout", "vllm",
                            "--save_strategy", "no"])
    trainer, _ = entry.build_trainer(run, cfg)
    trainer.train()
    engine = trainer._rollout
    assert engine is not None and engine.loaded_step == 1  # step 0's weights, then reloaded after step 1
    assert [r for r in trainer.state.log_history if "loss" in r], "no training step logged"

    # After a reload the engine serves (finite log-probs). Whether it serves *exactly* the policy is checked
    # on the weights (tests/training/test_rollout.py); a token-level check here is still to be written.
    with torch.no_grad():
        engine.load(merged_weights(trainer.model, engine.dtype), trainer.state.global_step)
    ids = trainer.processing_class("I cannot sleep and I feel empty most days.")["input_ids"]
    out = engine.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                              use_tqdm=False)
    served = torch.tensor([next(iter(d.values())).logprob for d in out[0].prompt_logprobs[1:]])
    assert len(served) == len(ids) - 1 and torch.isfinite(served).all()
    trainer.close_rollout_engine()


def test_v2_recipe_with_the_vllm_rollout_validates_through_the_engine(tmp_path, data_dir, smoke):
    """The v2 config as configured (rollout: vllm, bf16 autocast) on the tiny model: the SFT adapter merged and a
    fresh adapter trained on top (KL logged), label_prob rewards, and validation whose greedy reasoning comes
    from the in-process engine (stopped at the commit point) at step 0 and after the step; final/ is one adapter
    stacked from both."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training import run_crpo as entry

    base = smoke / "tiny_init"
    sft = tmp_path / "sft_adapter"
    torch.manual_seed(0)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                   LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                              task_type="CAUSAL_LM")).save_pretrained(sft)
    out = tmp_path / "run"
    run, cfg = entry.parse(["--config", str(REPO / "training" / "configs" / "crpo_smollm2_v2.yaml"),
                            "--model_name_or_path", str(base), "--adapter", str(sft), "--data-dir", str(data_dir),
                            "--datasets", "DR", "dreaddit", "--eval_datasets", "DR", "dreaddit", "SAD",
                            "--samples_per_dataset", "4", "--output_dir", str(out),
                            "--max_steps", "1", "--max_completion_length", "24", "--eval_every", "1",
                            "--eval_rows_per_dataset", "2", "--save_strategy", "no", "--learning_rate", "0.05"])
    assert cfg.rollout == "vllm" and cfg.bf16 == native_bf16()
    from training.run_log import JsonlMetricsCallback

    trainer, about = entry.build_trainer(run, cfg, [JsonlMetricsCallback(out / "metrics.jsonl")])
    assert cfg.scale_rewards == "batch" and cfg.label_prior == "natural"
    pool = trainer.train_dataset
    weights = {(t, lab): w for t, lab, w in zip(pool["task"], pool["label"], pool["prior_weight"], strict=True)}
    assert weights == {(t, lab): about["priors"][t][lab] for t, lab in weights}  # each row its label's weight
    assert weights[("DR", "yes")] > 1 > weights[("DR", "no")]  # IMHI's DR is mostly "yes"; the pool is 50/50
    try:
        texts = trainer.greedy_completions(trainer.validation.prompts[:2])  # builds the engine at step 0
        assert trainer._rollout.loaded_step == 0 and len(texts) == 2 and all(isinstance(t, str) for t in texts)
        # validation scores labels on the engine (bf16, as served); the policy's own logits (fp32) agree
        rows, prompts = trainer.validation.examples[:2], trainer.validation.prompts[:2]
        for completions in (texts, ["", ""]):  # after the greedy reasoning, and the direct decision
            label_texts = [[lab.text for lab in ex.task.labels] for ex in rows]
            reference = LabelScorer(trainer.processing_class).probabilities(trainer.model, prompts, completions,
                                                                              label_texts)
            served = trainer.label_probabilities(prompts, completions, label_texts)  # the engine's scores
            for got, want in zip(served, reference, strict=True):
                assert sum(got) == pytest.approx(1.0) and got == pytest.approx(want, abs=0.03)
            labels = [argmax_label(ex, p) for ex, p in zip(rows, trainer.probabilities_at_commit(rows, prompts,
                                                                                               completions))]
            assert labels == [ex.task.label_names[max(range(len(p)), key=p.__getitem__)]
                              for ex, p in zip(rows, served)]
        trainer.train()
        assert trainer._rollout.loaded_step == 1  # reloaded for the validation after the step
    finally:
        trainer.close_rollout_engine()
    rows = read_jsonl(out / "metrics.jsonl")
    step = next(r for r in rows if "loss" in r)
    assert step["kl"] is not None and 0 <= step["crpo/p_gold"] <= 1 and step["rewards/label_prob/mean"] >= 0
    assert [r["step"] for r in rows if "val/avg_weighted_f1" in r] == [0, 1]
    assert {ex.dataset for ex in trainer.validation.examples} == {"DR", "dreaddit", "SAD"}  # SAD: validated, not trained
    assert all("val/weighted_f1/SAD" in r for r in rows if "val/avg_weighted_f1" in r)
    assert set(pool["dataset"]) == {"DR", "dreaddit"}


@pytest.mark.parametrize("on_decision", [True, False])
def test_loss_on_decision_false_credits_the_reasoning_only(smoke, tmp_path, on_decision):
    """The hand-made rows differ only in their decision ("yes" rows +1, "no" rows -1): with the decision in the
    loss, the advantages push the label tokens; without it, the identical reasonings' pushes cancel."""
    trainer, tok = make_trainer(smoke / "tiny_init", tmp_path, "grpo")
    trainer.args.loss_on_decision = on_decision
    batch = hand_made_batch(trainer, tok)
    trainer._mask_decision(batch)
    assert torch.equal(batch["crpo_text_mask"], batch["completion_mask"])
    if not on_decision:
        first_decision = (batch["crpo_stage"] == STAGE_NAMES.index("mental_state")).int().argmax(dim=1)
        for row, i in enumerate(first_decision.tolist()):
            assert batch["tool_mask"][row, :i].all() and not batch["tool_mask"][row, i:].any()
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    grad = sum(p.grad.abs().sum().item() for p in trainer.model.parameters() if p.grad is not None)
    if on_decision:
        assert grad > 1e-1
    else:
        assert grad < 1e-4  # floating-point noise of the cancelling pushes
    assert trainer._metrics["train"]["crpo/entropy/mental_state"][-1] > 0  # still logged
