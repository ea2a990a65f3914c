import json
import os

import pytest
import torch

from mental_r1.base_model import MANIFEST, BaseModelError, checkpoint_sha256, ensure_base_model, verify


def test_checkpoint_loads_and_generates(base_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    manifest = json.loads((base_model_dir / MANIFEST).read_text())
    assert manifest["sha256"] == checkpoint_sha256(base_model_dir) == verify(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)
    assert model.dtype == torch.bfloat16
    assert 134e6 < model.num_parameters() < 136e6
    assert getattr(model.config, "quantization_config", None) is None
    assert "<|im_start|>" in (tokenizer.chat_template or "")
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply  # a real pretrained model, not random weights


def test_second_call_is_a_noop(base_model_dir):
    mtime = (base_model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_base_model(base_model_dir.parent) == base_model_dir
    assert (base_model_dir / "model.safetensors").stat().st_mtime_ns == mtime


def test_verify_detects_corruption(base_model_dir, tmp_path):
    copy = tmp_path / "m"
    copy.mkdir()
    for name in ("config.json", MANIFEST):
        (copy / name).write_bytes((base_model_dir / name).read_bytes())
    with pytest.raises(BaseModelError, match="corrupted"):
        verify(copy)


def test_unfetchable_package_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(BaseModelError, match="MENTAL_R1_SMOLLM2_WHEEL"):
        ensure_base_model(tmp_path)
    assert not any(p.name.startswith("SmolLM2") for p in tmp_path.iterdir())


def test_the_checkpoint_is_published_fsynced_and_never_half_written(monkeypatch, tmp_path, fsynced):
    import mental_r1.base_model as bm

    monkeypatch.setattr(bm, "_fetch_gguf", lambda workdir: workdir / "model.gguf")
    monkeypatch.setattr(bm, "_convert", lambda gguf, out: (out / "config.json").write_text("{}"))
    out = ensure_base_model(tmp_path / "ok")
    assert json.loads((out / MANIFEST).read_text())["sha256"] == checkpoint_sha256(out)
    assert {"config.json", MANIFEST} <= {p.name for p in fsynced} and fsynced[-1] == tmp_path / "ok"
    assert [p.name for p in (tmp_path / "ok").iterdir()] == [bm.MODEL_DIRNAME]  # no download or temp left

    def crash(gguf, out):
        (out / "config.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(bm, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_base_model(tmp_path / "crashed")
    assert list((tmp_path / "crashed").iterdir()) == []
