"""The embedded default model: Mental-R1-135M = the base model + the committed LoRA adapter, merged.

    python -m mental_r1.default_model          # prints the checkpoint folder the service serves by default

The adapter ships inside the package (`mental_r1/adapters/mental-r1-135m/`: the LoRA weights, the calibration,
the model card and `manifest.json`, written by training/ship_adapter.py with every file's SHA-256, the version
and how it was trained); the merged checkpoint is written once into the model cache
(`$MENTAL_R1_CACHE/Mental-R1-135M-<adapter hash>`), atomically (mental_r1.publish), with a manifest like the
base model's. An adapter whose files do not match its manifest is refused. When no adapter is committed, the
default is the base model itself, with a warning, and the service names it as the untrained base
(`mental_r1.base_model.UNTRAINED_NAME`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

from mental_r1.base_model import MANIFEST, cache_dir, checkpoint_sha256, ensure_base_model
from mental_r1.calibration import CALIBRATION_FILE
from mental_r1.publish import publish_folder

log = logging.getLogger(__name__)

ADAPTER_DIR = Path(__file__).resolve().parent / "adapters" / "mental-r1-135m"  # package data
MODEL_NAME = "Mental-R1-135M"
ADAPTER_MANIFEST = "manifest.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", CALIBRATION_FILE, "README.md")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_adapter(adapter: Path) -> dict:
    """The adapter's manifest, after checking that every file it lists has the recorded SHA-256."""
    path = adapter / ADAPTER_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{adapter} has no {ADAPTER_MANIFEST}; ship adapters with training/ship_adapter.py")
    manifest = json.loads(path.read_text())
    for name, want in manifest["files"].items():
        got = file_sha256(adapter / name) if (adapter / name).exists() else "missing"
        if got != want:
            raise ValueError(f"{adapter / name}: SHA-256 {got[:12]} does not match the manifest ({want[:12]}); "
                             "the adapter is corrupt or was edited by hand: restore it with git or re-ship it")
    return manifest


def adapter_sha256(adapter: Path) -> str:
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        if (adapter / name).exists():
            h.update((adapter / name).read_bytes())
    return h.hexdigest()


def merge_adapter(base: Path, adapter: Path, out: Path) -> None:
    """Write base + LoRA adapter, merged, as a plain bf16 checkpoint (tokenizer and card included)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    for extra in ("README.md", "training_config.json", CALIBRATION_FILE):
        if (adapter / extra).exists():
            shutil.copy(adapter / extra, out / extra)


def ensure_default_model(root: Path | None = None, adapter: Path = ADAPTER_DIR, base: Path | None = None) -> Path:
    """The folder the service serves when no --model is given (built on first use, a no-op afterwards)."""
    base = base or ensure_base_model(root)
    if not (adapter / "adapter_model.safetensors").exists():
        log.warning("no Mental-R1 adapter in %s: the default model is the untrained base model %s, which does "
                    "not assess reliably (ship an adapter with training/ship_adapter.py)", adapter, base.name)
        return base
    root = Path(root) if root else cache_dir()
    shipped = verify_adapter(adapter)
    sha = adapter_sha256(adapter)
    target = root / f"{MODEL_NAME}-{sha[:12]}"
    if (target / MANIFEST).exists():
        return target
    log.info("merging %s into %s", adapter, base.name)

    def build(out: Path) -> None:
        merge_adapter(base, adapter, out)
        manifest = {"name": MODEL_NAME, "version": shipped.get("version"), "base": base.name,
                    "adapter_sha256": sha, "dtype": "bfloat16", "sha256": checkpoint_sha256(out)}
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2))

    publish_folder(target, build)
    return target


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(ensure_default_model())
    except Exception as e:  # noqa: BLE001 - a CLI: say what failed and exit non-zero
        sys.exit(f"error: could not prepare the default model: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
