import json

import pytest
import torch

from mental_r1.base_model import MANIFEST, checkpoint_sha256
from mental_r1.default_model import MODEL_NAME, adapter_sha256, ensure_default_model


def test_without_an_adapter_the_default_is_the_base_model_with_a_warning(base_model_dir, tmp_path, caplog):
    assert ensure_default_model(tmp_path, adapter=tmp_path / "none", base=base_model_dir) == base_model_dir
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "untrained base model" in warning.getMessage()


def test_the_merged_model_is_published_fsynced_and_never_half_written(monkeypatch, tmp_path, fsynced):
    import mental_r1.default_model as dm

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    monkeypatch.setattr(dm, "verify_adapter", lambda a: {"version": "9.9"})
    monkeypatch.setattr(dm, "merge_adapter", lambda base, a, out: (out / "model.safetensors").write_bytes(b"m"))
    cache = tmp_path / "cache"
    out = ensure_default_model(cache, adapter=adapter, base=tmp_path / "base")
    assert out.parent == cache and (out / "model.safetensors").read_bytes() == b"m"
    assert {"model.safetensors", MANIFEST} <= {p.name for p in fsynced} and fsynced[-1] == cache

    def crash(base, a, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    (adapter / "adapter_model.safetensors").write_bytes(b"another lora")  # a new adapter hash: a new folder
    monkeypatch.setattr(dm, "merge_adapter", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_default_model(cache, adapter=adapter, base=tmp_path / "base")
    assert [p.name for p in cache.iterdir()] == [out.name]  # no partial folder, no temp left


def test_adapter_is_merged_once_into_a_verified_checkpoint(base_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    trained = tmp_path / "trained"
    peft_model.save_pretrained(trained)
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    from training.ship_adapter import ship

    adapter = ship(trained, tmp_path / "adapter", "1.2.3", base_model_dir, tmp_path / "calibration.json",
                   None, None, "test")

    out = ensure_default_model(tmp_path / "cache", adapter=adapter, base=base_model_dir)
    assert out.name == f"{MODEL_NAME}-{adapter_sha256(adapter)[:12]}"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["name"] == MODEL_NAME and manifest["sha256"] == checkpoint_sha256(out)
    assert manifest["version"] == "1.2.3"
    assert json.loads((out / "calibration.json").read_text())["temperature"] == 2.0  # served with the model
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_merged, base.model.layers[0].self_attn.q_proj.weight)  # the adapter is in
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert ensure_default_model(tmp_path / "cache", adapter=adapter, base=base_model_dir) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime  # second call is a no-op



def test_shipped_manifest_matches_the_files_and_a_tampered_adapter_is_refused(base_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mental_r1.default_model import file_sha256, verify_adapter
    from training.ship_adapter import ship

    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    trained = tmp_path / "trained"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(trained)
    adapter = ship(trained, tmp_path / "adapter", "0.1", base_model_dir, None, None, None, None)
    from safetensors.torch import load_file

    shipped, original = load_file(adapter / "adapter_model.safetensors"), load_file(trained / "adapter_model.safetensors")
    assert set(shipped) == set(original) and all(t.dtype == torch.bfloat16 for t in shipped.values())
    assert all(torch.equal(shipped[k], original[k].to(torch.bfloat16)) for k in shipped)  # shipped in bf16
    manifest = verify_adapter(adapter)
    assert manifest["files"] == {n: file_sha256(adapter / n) for n in ("adapter_config.json",
                                                                      "adapter_model.safetensors")}
    assert manifest["base_model"]["sha256"] == json.loads((base_model_dir / MANIFEST).read_text())["sha256"]
    with (adapter / "adapter_model.safetensors").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="does not match the manifest"):
        ensure_default_model(tmp_path / "cache", adapter=adapter, base=base_model_dir)


def test_the_manifest_names_the_entry_point_that_trained_the_adapter(tmp_path):
    from training.ship_adapter import training_record

    config = tmp_path / "x.yaml"
    config.write_text("seed: 42\n")
    (tmp_path / "mental_r1_run.json").write_text(json.dumps({"trainer": {"algorithm": "crpo", "beta": 0.01}}))
    record = training_record(tmp_path, None, config)
    assert record["command"] == f"python training/run_crpo.py --config {config}" and record["config"] == "seed: 42\n"
    (tmp_path / "mental_r1_run.json").write_text(json.dumps({"trainer": {"learning_rate": 4e-4}}))  # an SFT run
    assert training_record(tmp_path, None, config)["command"] == f"python training/run_sft.py --config {config}"
    assert training_record(tmp_path, None, None)["command"] is None


def test_the_committed_adapter_matches_its_manifest():
    from mental_r1.default_model import ADAPTER_DIR, verify_adapter

    manifest = verify_adapter(ADAPTER_DIR)  # raises if a file is missing or differs from the manifest
    assert manifest["name"] == MODEL_NAME and manifest["version"]
    assert (ADAPTER_DIR / "adapter_model.safetensors").stat().st_size <= 40 * 10**6
    assert json.loads((ADAPTER_DIR / "calibration.json").read_text())["temperature"] > 0
    assert manifest["training"]["command"] and manifest["training"]["global_step"] > 0
