import json

import torch

from mental_r1.base_model import MANIFEST, checkpoint_sha256
from mental_r1.default_model import MODEL_NAME, adapter_sha256, ensure_default_model


def test_without_an_adapter_the_default_is_the_base_model(base_model_dir, tmp_path):
    assert ensure_default_model(tmp_path, adapter=tmp_path / "none", base=base_model_dir) == base_model_dir


def test_adapter_is_merged_once_into_a_verified_checkpoint(base_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)

    out = ensure_default_model(tmp_path / "cache", adapter=adapter, base=base_model_dir)
    assert out.name == f"{MODEL_NAME}-{adapter_sha256(adapter)[:12]}"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["name"] == MODEL_NAME and manifest["sha256"] == checkpoint_sha256(out)
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_merged, base.model.layers[0].self_attn.q_proj.weight)  # the adapter is in
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert ensure_default_model(tmp_path / "cache", adapter=adapter, base=base_model_dir) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime  # second call is a no-op

