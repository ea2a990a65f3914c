"""One vLLM engine per subprocess, one after the other: how bench.dtype and bench.eager compare engine settings.

A variant's child is `python -m MODULE --model M --max-tokens N --child VARIANT PROMPTS_JSON`; it writes its
result to PROMPTS_JSON.VARIANT (vLLM writes its own lines to stdout), which `run_variants` reads back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from bench.provenance import REPO


def add_child_arguments(parser: argparse.ArgumentParser, variant: str, max_tokens: int = 128) -> None:
    """The options `run_variants` passes to a child (and the parent's own --model, --max-tokens)."""
    parser.add_argument("--model", default=None, help="checkpoint folder; default: the embedded default model")
    parser.add_argument("--max-tokens", type=int, default=max_tokens)
    parser.add_argument("--child", nargs=2, metavar=(variant, "PROMPTS_JSON"), help=argparse.SUPPRESS)


def run_variants(module: str, model: str, max_tokens: int, variants: Iterable[str], prompts: object) -> dict:
    """{variant: its child's result}, each child a fresh process on the same prompts (any JSON value)."""
    variants = list(variants)
    prompts_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"{module.replace('.', '-')}-{os.getpid()}.json"
    with prompts_file.open("w") as f:  # an input, not a recorded result (tests/bench/test_provenance.py)
        json.dump(prompts, f)
    results = {}
    try:
        for variant in variants:
            proc = subprocess.run([sys.executable, "-m", module, "--model", model, "--max-tokens", str(max_tokens),
                                   "--child", variant, str(prompts_file)],
                                  cwd=REPO, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"the {variant} engine failed:\n{proc.stderr[-3000:]}")
            results[variant] = json.loads(Path(f"{prompts_file}.{variant}").read_text())
    finally:
        for path in (prompts_file, *(Path(f"{prompts_file}.{v}") for v in variants)):
            path.unlink(missing_ok=True)
    return results
