"""The vLLM rollout's weight hand-over: LoRA merged on the fly, checkpoint names, training weights untouched."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from training.rollout import merged_weights


def tiny_llama(tie: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie))


@pytest.mark.parametrize("tie", [True, False])
def test_plain_model_gives_its_own_weights_in_bf16(tie):
    model = tiny_llama(tie)
    out = dict(merged_weights(model))
    assert set(out) == {n for n, _ in model.named_parameters()}
    assert ("lm_head.weight" in out) is (not tie)
    for name, p in model.named_parameters():
        assert out[name].dtype == torch.bfloat16 and torch.equal(out[name], p.detach().to(torch.bfloat16))


def test_lora_is_merged_under_checkpoint_names_without_touching_the_policy():
    model = get_peft_model(tiny_llama(True), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # peft initialises B to 0, which would make the merge a no-op
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    out = dict(merged_weights(model))
    assert set(out) == set(expected) - {"lm_head.weight"}  # tied: vLLM takes the embedding
    changed = [n for n in out if not torch.equal(out[n], expected[n].to(torch.bfloat16))]
    assert "model.layers.0.self_attn.q_proj.weight" in out
    assert not changed, changed[:3]
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(out[q], before[f"base_model.model.{q.replace('.weight', '.base_layer.weight')}"].bfloat16())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
