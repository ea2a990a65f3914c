"""shared_prompt: one forward per distinct prompt gives TRL's per-token log-probs, entropies and gradients."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.utils import add_fused_lm_head

from training.crpo_trainer import compact_lm_head
from training.shared_prompt import distinct_rows, shared_prompt_logps, unshuffled_split

POSTS = ["I can't sleep and work keeps piling up.", "Lovely walk by the sea today, then dinner with friends."]
REPLIES = [["Stress from work.", "The poster is overwhelmed and tired, sleep is gone."],
           ["A calm day.", "No"]]


def batch(tok):
    """Two prompts × two completions each, TRL's layout: prompts left-padded and completions right-padded to the
    longest of the batch, plus one column of padding everywhere on both sides (a longer row elsewhere)."""
    prompts = [tok(f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n")["input_ids"] for p in POSTS]
    completions = [[tok(r)["input_ids"] + [tok.eos_token_id] for r in group] for group in REPLIES]
    width_p = max(map(len, prompts)) + 1
    width_c = max(len(c) for group in completions for c in group) + 1
    ids, mask = [], []
    for prompt, group in zip(prompts, completions, strict=True):
        for completion in group:
            left, right = width_p - len(prompt), width_c - len(completion)
            ids.append([tok.pad_token_id] * left + prompt + completion + [tok.pad_token_id] * right)
            mask.append([0] * left + [1] * (len(prompt) + len(completion)) + [0] * right)
    return torch.tensor(ids), torch.tensor(mask), width_c


@pytest.fixture(scope="module")
def policy(tiny_dir):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
                                             init_lora_weights=False))  # non-zero B: the adapter changes values
    return model, AutoTokenizer.from_pretrained(tiny_dir)


def scored(model, ids, mask, keep, shared: bool):
    model.zero_grad()
    with compact_lm_head():
        if shared:
            logps, entropy = shared_prompt_logps(model, ids, mask, keep, compute_entropy=True)
        else:  # TRL 1.16's _get_per_token_logps_and_entropies, one chunk
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-keep] = -100
            out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
            logps, entropy = out.log_probs[:, -keep:], out.entropy[:, -keep:]
    (logps.sum() + 0.3 * entropy.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), entropy.detach(), grads


def test_distinct_rows_finds_each_prompt_and_its_first_row():
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[0, 1, 1]] * 2 + [[1, 1, 1]] + [[0, 1, 1]] + [[1, 1, 1]])
    first, inverse = distinct_rows(ids, mask)
    assert sorted(first.tolist()) == [0, 2]
    assert torch.equal(ids[first][inverse], ids)  # every row maps back to its own prompt
    same_ids_other_mask = distinct_rows(torch.tensor([[0, 5], [0, 5]]), torch.tensor([[0, 1], [1, 1]]))[0]
    assert len(same_ids_other_mask) == 2  # a padding difference is a different prompt


def test_shared_prompt_matches_trls_forward_values_and_gradients(policy):
    model, tok = policy
    ids, mask, keep = batch(tok)
    lp, h, g = scored(model, ids, mask, keep, shared=True)
    ref_lp, ref_h, ref_g = scored(model, ids, mask, keep, shared=False)
    assert lp.shape == ref_lp.shape == (4, keep)
    assert torch.allclose(lp, ref_lp, atol=1e-5) and torch.allclose(h, ref_h, atol=1e-5)
    completion = mask[:, -keep:].bool()
    assert (lp[~completion] == 0).all() and (lp[completion] < 0).all()  # padding scores 0, as in TRL
    assert set(g) == set(ref_g) and len(g) > 0
    assert all(torch.allclose(g[n], ref_g[n], atol=1e-5) for n in g), "gradients differ"


def test_shared_prompt_rejects_a_prompt_of_one_token(policy):
    model, _ = policy
    with pytest.raises(ValueError, match="at least 2 tokens"):
        shared_prompt_logps(model, torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long), 2, False)


def test_unshuffled_split_keeps_the_order_and_restores_trls_shuffle():
    import trl.trainer.grpo_trainer as trl_grpo

    before = trl_grpo.shuffle_sequence_dict
    rows = {"x": torch.arange(16)}
    with unshuffled_split():
        assert torch.equal(trl_grpo.shuffle_sequence_dict(rows)["x"], torch.arange(16))
    assert trl_grpo.shuffle_sequence_dict is before
    torch.manual_seed(0)
    assert not torch.equal(trl_grpo.shuffle_sequence_dict(rows)["x"], torch.arange(16))


def test_the_trainer_scores_alike_with_and_without_sharing(tiny_dir, tmp_path):
    from tests.training.test_crpo_trainer import trainer_on

    ids, mask, keep = batch(AutoTokenizer.from_pretrained(tiny_dir))
    values = {}
    for share in (True, False):
        trainer = trainer_on(tiny_dir, tmp_path / str(share), share_prompt=share)
        logps, entropy, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep, batch_size=2,
                                                                        compute_entropy=True)
        values[share] = (logps.detach(), entropy.detach())
        assert trainer._crpo_entropies is entropy  # kept for the stage term
    assert torch.allclose(values[True][0], values[False][0], atol=1e-5)
    assert torch.allclose(values[True][1], values[False][1], atol=1e-5)


def test_a_real_trl_step_moves_the_weights_alike_with_and_without_sharing(tiny_dir, tmp_path):
    """One GRPO step (2 prompts × 4 completions, 2 micro-batches, KL to the reference, the stage term) with plain
    SGD, so the update is the accumulated gradient itself: sharing the prompt and splitting in order change
    neither."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from training.config import CRPOConfig
    from training.crpo_trainer import CRPOTrainer

    def length_reward(completions, **_):  # reward signal in every group of a random model
        return [float(len(c)) for c in completions]

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    prompts = [f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" for p in POSTS]
    moved = {}
    for share in (True, False):
        torch.manual_seed(0)
        cfg = CRPOConfig(output_dir=str(tmp_path / str(share)), use_cpu=True, bf16=False, report_to="none",
                         per_device_train_batch_size=4, gradient_accumulation_steps=2, max_completion_length=8,
                         max_steps=1, learning_rate=0.1, optim="sgd", gradient_checkpointing=False,
                         save_strategy="no", paired_steps=False, eval_every=0, disable_tqdm=True, logging_steps=1,
                         stage_beta_m=0.5, share_prompt=share, seed=0, shuffle_dataset=False)
        model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer = CRPOTrainer(model=model, reward_funcs=[length_reward], args=cfg, processing_class=tok,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]))
        trainer.train()
        row = next(r for r in trainer.state.log_history if "loss" in r)
        assert row["crpo/skipped_step"] == 0.0
        moved[share] = {n: p.detach() - before[n] for n, p in trainer.model.named_parameters()}
    assert any(d.abs().max() > 0 for d in moved[True].values())
    for name, delta in moved[True].items():
        assert torch.allclose(delta, moved[False][name], atol=1e-6), name


def test_gradient_checkpointing_falls_back_to_trls_forward(tmp_path, caplog):
    from training.config import CRPOConfig

    cfg = CRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=True,
                     paired_steps=False, report_to="none")
    assert cfg.share_prompt is False and "gradient checkpointing drops" in caplog.text


def test_a_model_that_returns_no_cache_is_an_error_not_a_silent_wrong_score(policy):
    model, tok = policy
    ids, mask, keep = batch(tok)
    model.get_base_model().gradient_checkpointing_enable()
    model.train()
    try:
        with pytest.raises(RuntimeError, match="no KV cache"):
            shared_prompt_logps(model, ids, mask, keep, compute_entropy=False)
    finally:
        model.get_base_model().gradient_checkpointing_disable()
        model.eval()
