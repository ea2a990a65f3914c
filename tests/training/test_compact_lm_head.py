"""compact_lm_head: TRL's fused LM head scoring only labelled positions gives the same values and gradients."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.utils import add_fused_lm_head

from training.crpo_trainer import compact_lm_head


def scored(compact: bool):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1))
    add_fused_lm_head(model, temperature=0.85, outputs=("log_probs", "entropy"))
    ids = torch.randint(0, 64, (3, 12))
    labels = ids.clone()
    labels[:, :8] = -100  # the prompt: no label
    labels[2, 10:] = -100  # padding
    if compact:
        with compact_lm_head():
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    else:
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    (out.log_probs.sum() + 0.3 * out.entropy.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), out.entropy.detach(), grads


def test_compact_scoring_matches_full_scoring_values_and_gradients():
    full_lp, full_h, full_g = scored(False)
    lp, h, g = scored(True)
    assert torch.allclose(lp, full_lp, atol=1e-6) and torch.allclose(h, full_h, atol=1e-6)
    assert lp[:, :7].abs().sum() == 0 and lp[:, 7:].abs().sum() > 0  # unlabelled positions are 0 in both
    assert set(g) == set(full_g) and all(torch.allclose(g[n], full_g[n], atol=1e-6) for n in g)


def test_the_context_restores_trls_choice():
    import trl.trainer.utils as trl_utils

    before = trl_utils._use_triton
    with compact_lm_head():
        assert trl_utils._use_triton(torch.device("cpu")) is True
    assert trl_utils._use_triton is before and trl_utils._use_triton(torch.device("cpu")) is False
