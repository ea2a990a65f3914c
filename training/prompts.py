"""Training rows from dataset examples, with the prompt the service uses (mental_r1.contract.build_prompt).

Posts longer than the prompt budget are cut at a token boundary so that the chat-templated prompt (system
prompt, post, question, options, pre-filled `<think>\\n<stimulus>`) stays within `max_prompt_tokens`.
Mixing datasets is the default: a seeded subset per dataset, then one shuffled mixture.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mental_r1.contract import build_prompt
from mental_r1.data import Example

_SLACK = 4  # re-tokenising a cut post next to the template's quotes can shift a few tokens


def fit_post(tokenizer, example: Example, max_prompt_tokens: int) -> str:
    """The post, cut so that `build_prompt(...)` has at most ~max_prompt_tokens tokens."""
    task = example.task
    fixed = len(tokenizer(build_prompt(tokenizer, "", task.question, task.label_names),
                          add_special_tokens=False)["input_ids"])
    budget = max_prompt_tokens - fixed - _SLACK
    if budget <= 0:
        raise ValueError(f"max_prompt_tokens={max_prompt_tokens} leaves no room for the post (the template "
                         f"alone takes {fixed} tokens); raise max_prompt_tokens")
    ids = tokenizer(example.text, add_special_tokens=False)["input_ids"]
    return example.text if len(ids) <= budget else tokenizer.decode(ids[:budget]).strip()


def prompt_for(tokenizer, example: Example, max_prompt_tokens: int) -> str:
    task = example.task
    return build_prompt(tokenizer, fit_post(tokenizer, example, max_prompt_tokens), task.question, task.label_names)


def rl_rows(tokenizer, examples: Sequence[Example], max_prompt_tokens: int) -> list[dict]:
    """GRPO rows: `prompt` (text, ends with the prefill) plus the columns the accuracy reward reads."""
    return [{"prompt": prompt_for(tokenizer, ex, max_prompt_tokens), "dataset": ex.dataset, "task": ex.task.id,
             "label": ex.label, "options": list(ex.task.label_names)} for ex in examples]


def select_examples(examples: Sequence[Example], per_dataset: int | None, seed: int) -> list[Example]:
    """A seeded random subset of `per_dataset` examples of each dataset (all when None), shuffled together."""
    rng = random.Random(seed)
    by_dataset: dict[str, list[Example]] = {}
    for ex in examples:
        by_dataset.setdefault(ex.dataset, []).append(ex)
    out: list[Example] = []
    for name in sorted(by_dataset):
        rows = by_dataset[name]
        out.extend(rows if per_dataset is None or per_dataset >= len(rows) else rng.sample(rows, per_dataset))
    rng.shuffle(out)
    return out
