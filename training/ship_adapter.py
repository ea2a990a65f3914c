"""Ship a trained LoRA adapter as the embedded default model (mental_r1/adapters/mental-r1-135m/).

    python training/ship_adapter.py --adapter runs/sft_v2/final --run-dir runs/sft_v2 \
        --config training/configs/sft_smollm2_v2.yaml --calibration runs/eval/calibration_v2.json --version 2.0.0

Copies the adapter (config + weights, stored in bf16: the service merges it into a bf16 checkpoint anyway,
and it halves the file; at most 40 MB), the calibration fitted on validation
data (training/fit_calibration.py) and the model card (as README.md), and writes `manifest.json`: the version, every shipped file's
SHA-256 (mental_r1.default_model refuses an adapter that does not match it), the base model's hash, and how
the adapter was made (the training command and configuration, data, examples, steps, wall time, git commit).
The folder is replaced atomically. `--notes` adds free text (e.g. how the checkpoint was selected).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from mental_r1.base_model import MANIFEST as BASE_MANIFEST
from mental_r1.calibration import CALIBRATION_FILE
from mental_r1.default_model import ADAPTER_DIR, ADAPTER_MANIFEST, MODEL_NAME, file_sha256
from mental_r1.publish import publish_folder
from training.run_log import read_jsonl

MAX_ADAPTER_BYTES = 40 * 10**6  # issue 18: up to 40 MB of shipped weights


def git_commit(repo: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def training_record(adapter: Path, run_dir: Path | None, config: Path | None = None) -> dict:
    """The command and configuration, steps, examples and wall time of the run that wrote `adapter` (what its
    files say). The command is run_crpo.py when the adapter is an RL run's (its mental_r1_run.json names an
    algorithm), else run_sft.py (the cold-start SFT)."""
    run_json = adapter / "mental_r1_run.json"
    run = json.loads(run_json.read_text()) if run_json.exists() else None
    entry = "run_crpo.py" if run is not None and "algorithm" in run.get("trainer", {}) else "run_sft.py"
    record: dict = {"command": f"python training/{entry} --config {config}" if config else None,
                    "config": config.read_text() if config else None}
    state = adapter / "trainer_state.json"
    if state.exists():
        s = json.loads(state.read_text())
        record["global_step"] = s.get("global_step")
        record["max_steps"] = s.get("max_steps")
        record["train_batch_size"] = s.get("train_batch_size")
    if run is not None:
        record.update({k: run.get(k) for k in ("global_step", "selected_step", "validation", "sft_rows", "run",
                                               "versions")})
    if run_dir is not None and (run_dir / "metrics.jsonl").exists():
        rows = read_jsonl(run_dir / "metrics.jsonl")
        timed = [r for r in rows if "train_runtime" in r]
        if timed:
            record["wall_time_s"] = timed[-1]["train_runtime"]
        losses = [r for r in rows if "loss" in r and r.get("step", 0) <= (record.get("global_step") or 10**9)]
        if losses:
            record["last_logged_loss"] = losses[-1]["loss"]
    return record


def save_bf16(src: Path, dst: Path) -> None:
    """Copy a safetensors file with its floating-point tensors cast to bfloat16 (metadata kept)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(src, framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    save_file({k: t.to(torch.bfloat16) if t.is_floating_point() else t for k, t in tensors.items()}, dst, metadata)


def ship(adapter: Path, out: Path, version: str, base_dir: Path, calibration: Path | None,
         config: Path | None, run_dir: Path | None, notes: str | None, card: Path | None = None) -> Path:
    weights = adapter / "adapter_model.safetensors"
    if not weights.exists() or not (adapter / "adapter_config.json").exists():
        raise SystemExit(f"error: {adapter} is not a LoRA adapter (no adapter_config.json / adapter_model.safetensors)")
    if weights.stat().st_size > 2 * MAX_ADAPTER_BYTES:  # fp32 on disk; shipped in bf16 (half)
        raise SystemExit(f"error: {weights} is {weights.stat().st_size / 1e6:.1f} MB; the shipped adapter (bf16) must "
                         f"be at most {MAX_ADAPTER_BYTES // 10**6} MB (train with a lower lora_r)")
    base_manifest = json.loads((base_dir / BASE_MANIFEST).read_text())
    repo = Path(__file__).resolve().parents[1]

    def build(tmp: Path) -> None:
        shutil.copy(adapter / "adapter_config.json", tmp / "adapter_config.json")
        save_bf16(weights, tmp / "adapter_model.safetensors")
        if calibration is not None:
            shutil.copy(calibration, tmp / CALIBRATION_FILE)
        if card is not None:
            shutil.copy(card, tmp / "README.md")  # the model card travels into the merged checkpoint
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
        manifest = {
            "name": MODEL_NAME, "version": version,
            "base_model": {"name": base_dir.name, "sha256": base_manifest.get("sha256")},
            "files": files,
            "training": training_record(adapter, run_dir, config),
            "calibration": json.loads(calibration.read_text()) if calibration else None,
            "git_commit": git_commit(repo),
            "notes": notes,
        }
        (tmp / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))

    return publish_folder(out, build)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", required=True, type=Path, help="a LoRA checkpoint folder (checkpoint-N or final/)")
    ap.add_argument("--version", required=True)
    ap.add_argument("--calibration", type=Path, default=None, help="calibration.json from training/fit_calibration.py")
    ap.add_argument("--config", type=Path, default=None, help="the training config the adapter was trained with")
    ap.add_argument("--run-dir", type=Path, default=None, help="the run's output_dir (metrics.jsonl: wall time)")
    ap.add_argument("--notes", default=None)
    ap.add_argument("--card", type=Path, default=Path(__file__).resolve().parents[1] / "model_cards" / "mental-r1-135m.md",
                    help="the model card, shipped as README.md")
    ap.add_argument("--out", type=Path, default=ADAPTER_DIR)
    args = ap.parse_args(argv)
    from mental_r1.base_model import ensure_base_model

    out = ship(args.adapter, args.out, args.version, ensure_base_model(), args.calibration, args.config,
               args.run_dir, args.notes, args.card)
    print(f"shipped {args.adapter} as {MODEL_NAME} {args.version}: {out}")


if __name__ == "__main__":
    main()
