"""A tiny random Llama with the real tokenizer (training/models.py), built once per session: fast tests that run
real forward passes and TRL steps."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, base_model_dir) -> Path:
    from training.models import build_tiny_model

    return build_tiny_model(base_model_dir, tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
