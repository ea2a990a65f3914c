"""The RL start from an SFT LoRA adapter, and the one adapter that ships afterwards.

RL starts from the SFT model merged (W + ΔW_sft, `merged_start`) with a fresh LoRA adapter on top
(`fresh_lora_config`, given to TRL as `peft_config`; B = 0, so the policy starts exactly at the SFT model).
TRL's reference for a new adapter is the model with the adapter switched off: here the SFT model, so the
KL term (`beta`) anchors the policy to its start.

What is served is one adapter on the *base* model (evaluate.py and mental_r1/default_model.py merge an
adapter into the base). `stack_lora` writes ΔW_sft + ΔW_rl as one LoRA of rank r_sft + r_rl, exactly:

    s1·B1·A1 + s2·B2·A2 = [s1·B1, s2·B2] · [A1; A2]      (scaling 1: lora_alpha = r)

Trainer checkpoints (checkpoint-N/) hold the RL adapter alone, for resuming; only final/ is servable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

_UNSUPPORTED = ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform",
                "trainable_token_indices", "target_parameters")


def _config(adapter: Path) -> dict:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    bad = [k for k in _UNSUPPORTED if config.get(k)]
    if config.get("peft_type") != "LORA" or bad:
        raise ValueError(f"{adapter}: only plain LoRA adapters can be merged and stacked (found "
                         f"{config.get('peft_type')} with {bad}); retrain the SFT adapter without them")
    return config


def lora_scale(config: dict) -> float:
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def merged_start(model, adapter: str | Path):
    """`model` (a transformers causal LM) with the LoRA adapter merged into its weights: a plain model again."""
    from peft import PeftModel

    _config(Path(adapter))
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def fresh_lora_config(adapter: str | Path, r: int, alpha: int):
    """The config of a new LoRA adapter (B = 0: the policy starts where the model is) on the modules `adapter`
    adapts. Passed to TRL as `peft_config`, so TRL's reference is the model with the adapter switched off."""
    from peft import LoraConfig

    config = _config(Path(adapter))
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=config["target_modules"],
                      task_type="CAUSAL_LM")


def stack_lora(first: dict[str, torch.Tensor], first_scale: float, second: dict[str, torch.Tensor],
               second_scale: float) -> dict[str, torch.Tensor]:
    """One LoRA state dict (scaling 1) whose ΔW = first_scale·B1·A1 + second_scale·B2·A2, module by module.
    Keys are peft's saved names (`….lora_A.weight`, `….lora_B.weight`); both adapters must adapt the same
    modules."""
    if set(first) != set(second):
        raise ValueError(f"the adapters adapt different modules (only in one: "
                         f"{sorted(set(first) ^ set(second))[:3]}); train the RL adapter on the SFT adapter's modules")
    out = {}
    for key, one in first.items():
        two = second[key].to(one.dtype)
        if ".lora_A." in key:
            out[key] = torch.cat([one, two], dim=0)  # (r1 + r2, in)
        elif ".lora_B." in key:
            out[key] = torch.cat([first_scale * one, second_scale * two], dim=1)  # (out, r1 + r2)
        else:
            raise ValueError(f"unexpected adapter weight {key!r} (only LoRA A/B matrices can be stacked)")
    return out


def stacked_adapter(base_model, sft_adapter: str | Path, policy):
    """A PeftModel on `base_model` whose single adapter = the SFT adapter + the policy's RL adapter."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    sft_config = _config(Path(sft_adapter))
    sft = load_file(Path(sft_adapter) / "adapter_model.safetensors")
    rl_config = policy.peft_config["default"]
    rl = {k: v.detach().float() for k, v in get_peft_model_state_dict(policy, adapter_name="default").items()}
    state = stack_lora({k: v.float() for k, v in sft.items()}, lora_scale(sft_config), rl,
                       lora_scale({"r": rl_config.r, "lora_alpha": rl_config.lora_alpha,
                                   "use_rslora": rl_config.use_rslora}))
    rank = sft_config["r"] + rl_config.r
    model = get_peft_model(base_model, LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none",
                                                  target_modules=sft_config["target_modules"],
                                                  task_type="CAUSAL_LM"))
    result = set_peft_model_state_dict(model, state)
    assert not result.unexpected_keys, result.unexpected_keys[:3]
    return model
