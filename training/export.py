"""The final Hugging Face checkpoint folder of a run, written atomically (mental_r1.publish.publish_folder).

Contents: the model (safetensors), the tokenizer with its chat template, `generation_config.json` (the
paper's sampling: temperature 0.85, top_p 0.95), `mental_r1_run.json` (the resolved run configuration and
final metrics) and `README.md`, the model card rendered from model_cards/template.md. The service loads
the folder with `--model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

import torch
import transformers
import trl

from mental_r1.publish import publish_folder
from training.models import generation_config

TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "template.md"


def render_card(fields: dict[str, str], template: Path = TEMPLATE) -> str:
    """Fill the model-card template; a placeholder without a value is an error (substitute, not safe_)."""
    return Template(template.read_text()).substitute(fields)


def metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "(no metrics logged)"
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()))
    return "| metric | value |\n|---|---|\n" + rows


def versions() -> str:
    return f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}"


def export_checkpoint(model, tokenizer, target: str | Path, record: dict, card: dict[str, str],
                      max_new_tokens: int = 512) -> Path:
    """Write model + tokenizer + generation config + run record + model card to `target`, atomically."""
    text = render_card(card)  # fail before writing anything if the card is incomplete

    def build(tmp: Path) -> None:
        model.generation_config = generation_config(tokenizer, max_new_tokens)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "mental_r1_run.json").write_text(json.dumps(record, indent=2, default=str))
        (tmp / "README.md").write_text(text)

    return publish_folder(target, build)
