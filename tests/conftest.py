"""Shared fixtures: the IMHI data folder, the converted base model (cached between runs), its tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MENTAL_R1_DATA", REPO.parent / "shared" / "data" / "imhi"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"IMHI data not found at {DATA_DIR}; set MENTAL_R1_DATA"
    return DATA_DIR


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    from mental_r1.base_model import ensure_base_model

    return ensure_base_model()


@pytest.fixture(scope="session")
def tokenizer(base_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir)
