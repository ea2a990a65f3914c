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


def _quotas(sizes: Sequence[int], total: int) -> list[int]:
    """Split `total` as evenly as possible over groups of `sizes` rows, never taking more than a group has;
    what a small group cannot take goes to the others (water-filling)."""
    quota = [0] * len(sizes)
    left, open_groups = total, [i for i, n in enumerate(sizes) if n > 0]
    while left > 0 and open_groups:
        share, extra = divmod(left, len(open_groups))
        for j, i in enumerate(sorted(open_groups, key=lambda i: sizes[i] - quota[i])):
            take = min(share + (j < extra), sizes[i] - quota[i])
            quota[i] += take
            left -= take
        open_groups = [i for i in open_groups if quota[i] < sizes[i]]
    return quota


def select_examples(examples: Sequence[Example], per_dataset: int | None, seed: int,
                    balanced: bool = False) -> list[Example]:
    """A seeded random subset of `per_dataset` examples of each dataset (all when None), shuffled together.

    `balanced=True` spreads each dataset's examples evenly over its tasks and, within a task, over its
    labels (as far as the rarer ones have rows), so no class dominates what the model learns to answer.
    """
    rng = random.Random(seed)
    by_dataset: dict[str, list[Example]] = {}
    for ex in examples:
        by_dataset.setdefault(ex.dataset, []).append(ex)
    out: list[Example] = []
    for name in sorted(by_dataset):
        rows = by_dataset[name]
        if per_dataset is None or per_dataset >= len(rows):
            out.extend(rows)
        elif not balanced:
            out.extend(rng.sample(rows, per_dataset))
        else:
            groups: dict[str, dict[str, list[Example]]] = {}
            for ex in rows:
                groups.setdefault(ex.task.id, {}).setdefault(ex.label, []).append(ex)
            tasks = sorted(groups)
            per_task = _quotas([sum(map(len, groups[t].values())) for t in tasks], per_dataset)
            for t, n_task in zip(tasks, per_task):
                labels = sorted(groups[t])
                for lab, n in zip(labels, _quotas([len(groups[t][x]) for x in labels], n_task)):
                    out.extend(rng.sample(groups[t][lab], n))
    rng.shuffle(out)
    return out


def select_continuation(examples: Sequence[Example], per_dataset: int, seed: int, balanced: bool,
                        prior_per_dataset: int, prior_seed: int) -> list[Example]:
    """The examples of a run that continues an earlier one: new examples first.

    The earlier run selected `select_examples(examples, prior_per_dataset, prior_seed, balanced)`. Each dataset
    here takes `per_dataset` examples from the rest (selected as `select_examples` does), and a dataset with
    fewer unseen examples than that tops up with a seeded sample of the earlier run's, so every dataset keeps
    its share of the mixture (the test-only datasets' small carved train parts are all seen once already).
    """
    prior = select_examples(examples, prior_per_dataset, prior_seed, balanced)
    seen = {id(ex) for ex in prior}
    new = select_examples([ex for ex in examples if id(ex) not in seen], per_dataset, seed, balanced)
    rng = random.Random(seed)
    out = list(new)
    for name in sorted({ex.dataset for ex in examples}):
        missing = per_dataset - sum(ex.dataset == name for ex in new)
        if missing > 0:
            old = [ex for ex in prior if ex.dataset == name]
            out.extend(rng.sample(old, min(len(old), missing)))
    rng.shuffle(out)
    return out
