"""Where a run's policy comes from: a checkpoint folder, `base` (the converted SmolLM2-135M-Instruct), or a
tiny randomly initialised Llama built from a config with the real tokenizer (smoke tests; never a hub id).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from mental_r1.publish import publish_folder

# head_dim 32: the smallest head size vLLM's CPU attention supports, so the tiny model also serves.
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 32, "max_position_embeddings": 2048, "tie_word_embeddings": True}


def resolve_model_path(name: str) -> Path:
    if name == "base":
        from mental_r1.base_model import ensure_base_model

        return ensure_base_model()
    path = Path(name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint folder (no config.json); pass a local "
                                "folder, or `base` for the converted SmolLM2-135M-Instruct")
    return path


def generation_config(tokenizer, max_new_tokens: int, temperature: float = 0.85,
                      top_p: float = 0.95) -> GenerationConfig:
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=temperature,
                            top_p=top_p, max_new_tokens=max_new_tokens)


def build_tiny_model(tokenizer_source: Path, target: Path, seed: int) -> Path:
    """Write a random tiny Llama + the tokenizer of `tokenizer_source` to `target` (kept if it exists, so that a
    resumed run trains the same model)."""
    if (target / "config.json").exists():
        return target
    tok = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **TINY)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = generation_config(tok, 64)

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return publish_folder(target, build)
