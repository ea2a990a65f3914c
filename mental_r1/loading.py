"""A checkpoint folder → a ready Assessor: the one model-load sequence of the service (app/main.py), the batch
command (app/cli.py) and the evaluations (training/evaluate.py, screen_eval.py, decision_sweep.py).

    assessor = load_assessor(None, EngineLimits())            # the embedded default model, as served
    assessor = load_assessor("runs/sft_v2/final-merged", EngineLimits(max_num_seqs=64))
    ...
    assessor.engine.shutdown()

The folder's name and version (`model_info`) and calibration (`calibration.json`, none for a bare checkpoint)
are read before the engine starts, so a bad folder fails in a second, not after the engine's start-up.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mental_r1.assessor import Assessor
from mental_r1.calibration import Calibration, load_calibration
from mental_r1.engine import EngineLimits, build_engine
from mental_r1.schemas import ModelInfo


def model_info(folder: Path, name: str | None) -> ModelInfo:
    """Name and version of a checkpoint: the shipped version (if any) and the recorded or computed content hash.
    The converted base model (the default when no adapter ships) is named as the untrained base it is."""
    from mental_r1.base_model import MANIFEST, PACKAGE, UNTRAINED_NAME, checkpoint_sha256

    path = folder / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {"sha256": checkpoint_sha256(folder)}
    digest = f"sha256:{manifest['sha256'][:12]}"
    version = f"{manifest['version']}+{digest}" if manifest.get("version") else digest
    fallback = UNTRAINED_NAME if manifest.get("source") == PACKAGE else folder.name
    return ModelInfo(name=name or manifest.get("name") or fallback, version=version)


def checkpoint_folder(model: str | Path | None) -> Path:
    """The folder to serve: `model`, or the embedded default model (prepared in the cache on first use).
    Raises FileNotFoundError when the folder is not a checkpoint."""
    from mental_r1.default_model import ensure_default_model

    folder = Path(model) if model else ensure_default_model()
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} is not a model checkpoint (no config.json); check --model")
    return folder


def load_assessor(model_dir: str | Path | None, limits: EngineLimits, *, name: str | None = None,
                  calibration: Calibration | None = None) -> Assessor:
    """The Assessor of a checkpoint (None: the embedded default model) on a new vLLM engine (`assessor.engine`;
    the caller shuts it down). `name` overrides the reported model name; `calibration` replaces the one shipped
    with the model (decision_sweep.py's sample temperature)."""
    from transformers import AutoTokenizer

    folder = checkpoint_folder(model_dir)
    info = model_info(folder, name)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    calibration = calibration or load_calibration(folder)
    engine = build_engine(str(folder), **dataclasses.asdict(limits))
    return Assessor(engine, tokenizer, calibration, limits.max_model_len, model=info)
