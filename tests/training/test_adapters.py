import pytest
import torch
from safetensors.torch import load_file

from training.adapters import fresh_lora_config, lora_scale, merged_start, stack_lora, stacked_adapter


def test_stacked_lora_is_the_sum_of_both_deltas():
    g = torch.Generator().manual_seed(0)
    a1, b1 = torch.randn(2, 5, generator=g), torch.randn(3, 2, generator=g)  # rank 2, in 5, out 3
    a2, b2 = torch.randn(4, 5, generator=g), torch.randn(3, 4, generator=g)  # rank 4
    k_a, k_b = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
    out = stack_lora({k_a: a1, k_b: b1}, 2.0, {k_a: a2, k_b: b2}, 0.5)
    assert out[k_a].shape == (6, 5) and out[k_b].shape == (3, 6)
    torch.testing.assert_close(out[k_b] @ out[k_a], 2.0 * b1 @ a1 + 0.5 * b2 @ a2)
    with pytest.raises(ValueError, match="different modules"):
        stack_lora({k_a: a1, k_b: b1}, 1.0, {k_a: a2}, 1.0)


def test_lora_scale():
    assert lora_scale({"r": 16, "lora_alpha": 32}) == 2.0
    assert lora_scale({"r": 16, "lora_alpha": 32, "use_rslora": True}) == 8.0


def test_merged_start_fresh_adapter_reference_and_the_shipped_stack(tiny_dir, tmp_path):
    """RL from an SFT adapter: the reference (adapter off) is the SFT model, and final/'s one adapter on the base
    reproduces the trained policy."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    def base():
        return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)

    torch.manual_seed(0)
    sft_dir = tmp_path / "sft"
    get_peft_model(base(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                      init_lora_weights=False, task_type="CAUSAL_LM")).save_pretrained(sft_dir)
    ids = torch.tensor([[1, 50, 700, 9000, 42, 7]])
    with torch.no_grad():
        sft_logits = PeftModel.from_pretrained(base(), sft_dir)(input_ids=ids).logits
        assert not torch.allclose(sft_logits, base()(input_ids=ids).logits, atol=1e-4)  # the adapter matters

    config = fresh_lora_config(sft_dir, r=2, alpha=4)
    assert set(config.target_modules) == {"q_proj", "v_proj", "down_proj"}
    policy = get_peft_model(merged_start(base(), sft_dir), config)
    with torch.no_grad():
        torch.testing.assert_close(policy(input_ids=ids).logits, sft_logits, atol=1e-5, rtol=1e-5)  # B = 0
        for name, p in policy.named_parameters():  # "training": move the fresh adapter
            if "lora_" in name:
                p.add_(0.05 * torch.randn_like(p))
        trained = policy(input_ids=ids).logits
        with policy.disable_adapter():  # TRL's reference for a new adapter
            torch.testing.assert_close(policy(input_ids=ids).logits, sft_logits, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(trained, sft_logits, atol=1e-4)

        shipped = stacked_adapter(base(), sft_dir, policy)
        shipped.save_pretrained(tmp_path / "final")
        reloaded = PeftModel.from_pretrained(base(), tmp_path / "final")
        torch.testing.assert_close(reloaded(input_ids=ids).logits, trained, atol=1e-4, rtol=1e-4)
    assert reloaded.peft_config["default"].r == 6
    assert all(v.shape[0] == 6 for k, v in load_file(tmp_path / "final" / "adapter_model.safetensors").items()
               if ".lora_A." in k)
