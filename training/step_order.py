"""The order of RL prompts: every optimizer step takes its prompts from one task, spread over that task's labels.

Why: a step's gradient comes only from groups whose rewards differ, and yes/no label sentences all open
with the same "Yes,"/"No," token, so a run of steps that happen to hold mostly "no" prompts pushes every
binary task towards "no" at once (issue 19: steps 2-6 of the first comparison held 9 "no" prompts for 1
"yes", and the runs collapsed there). Pairing a task's classes inside every step makes each step's push
towards one answer meet the push towards the other.

`paired_order(examples, per_step, seed)`: per task, the examples of each label in a seeded shuffle, dealt
round-robin over the labels (label order reshuffled every round); cut into chunks of `per_step`; a chunk
holding a single label (what is left once the rarer labels run out) is dropped; the chunks of all tasks
are shuffled together. TRL's sampler then reads the rows in this order (`shuffle_dataset: false`), taking
`per_step` = generation_batch_size / num_generations prompts per step.

`rotate_datasets=True` (CRPOConfig `step_order: round_robin`) orders the chunks in rounds instead: every round
holds one chunk of each dataset that has chunks left, datasets in a fresh seeded order per round. Why: with
the chunks shuffled, the sixth v2 run's first 20 steps held DR, dreaddit, SAD and Irf 4 times each,
MultiWD 3, loneliness 1, CAMS and t-sid never, so one task's label prior pushed the shared "Yes,"/"No," token
several times before the tasks that would pull it back were visited (docs/training.md).

`tasks_per_step=k` (CRPOConfig `tasks_per_step`) makes a step of k chunks of `per_step / k` prompts, each from a
different dataset (each chunk still pairs its task's labels): with a large batch (16 prompts a step) one update then
holds several tasks instead of 16 posts of one, so no update is one task's push alone. The chunks keep the order
above; a chunk whose dataset the step already holds waits for the next step (`grouped`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from mental_r1.data import Example

log = logging.getLogger(__name__)


def paired_order(examples: Sequence[Example], per_step: int, seed: int,
                 rotate_datasets: bool = False, tasks_per_step: int = 1) -> list[Example]:
    """Examples reordered so that each consecutive block of `per_step` is one task with ≥ 2 labels (when the
    task has them; a single-label task's blocks are kept as they are). Examples that fit no block are dropped.
    With `rotate_datasets`, the blocks come in rounds of one block per dataset (module docstring). With
    `tasks_per_step` k > 1, each step is k blocks of per_step / k from k different datasets."""
    if tasks_per_step < 1 or per_step % tasks_per_step:
        raise ValueError(f"tasks_per_step must divide the {per_step} prompts of a step, got {tasks_per_step}")
    chunk_size = per_step // tasks_per_step  # one task's prompts in a step
    if chunk_size < 2:
        raise ValueError(f"pairing needs at least 2 prompts per task in a step, got {chunk_size}")
    rng = random.Random(seed)
    by_task: dict[str, dict[str, list[Example]]] = {}
    for ex in examples:
        by_task.setdefault(ex.task.id, {}).setdefault(ex.label, []).append(ex)
    chunks: list[list[Example]] = []
    dropped = 0
    for task in sorted(by_task):
        queues = {lab: rng.sample(rows, len(rows)) for lab, rows in sorted(by_task[task].items())}
        dealt: list[Example] = []
        while any(queues.values()):
            labels = [lab for lab, q in queues.items() if q]
            rng.shuffle(labels)
            dealt.extend(queues[lab].pop() for lab in labels)
        for i in range(0, len(dealt), chunk_size):
            chunk = dealt[i:i + chunk_size]
            if len(chunk) == chunk_size and (len({ex.label for ex in chunk}) > 1 or len(queues) == 1):
                chunks.append(chunk)
            else:
                dropped += len(chunk)
    rng.shuffle(chunks)
    if rotate_datasets:
        chunks = rotated(chunks, rng)
    if tasks_per_step > 1:
        steps = grouped(chunks, tasks_per_step)
        dropped += sum(map(len, chunks)) - len(steps) * per_step
        chunks = [chunk for step in steps for chunk in step]
    if dropped:
        log.info("paired order: %d of %d examples fit no step of %d prompts with two labels and are left out",
                 dropped, len(examples), per_step)
    return [ex for chunk in chunks for ex in chunk]


def grouped(chunks: list[list[Example]], k: int) -> list[list[list[Example]]]:
    """Steps of `k` chunks from `k` different datasets, taking the chunks in their order: a chunk whose dataset
    the step being filled already holds waits for a later step. Chunks that can fill no step are left out."""
    pending, steps = list(chunks), []
    while pending:
        step, datasets, waiting = [], set(), []
        for chunk in pending:
            if len(step) < k and chunk[0].dataset not in datasets:
                step.append(chunk)
                datasets.add(chunk[0].dataset)
            else:
                waiting.append(chunk)
        if len(step) < k:
            break
        steps.append(step)
        pending = waiting
    return steps


def rotated(chunks: list[list[Example]], rng: random.Random) -> list[list[Example]]:
    """`chunks` in rounds: each round one chunk of every dataset that has chunks left (in their given order
    within a dataset), the datasets in a fresh order per round."""
    by_dataset: dict[str, list[list[Example]]] = {}
    for chunk in chunks:
        by_dataset.setdefault(chunk[0].dataset, []).append(chunk)
    out: list[list[Example]] = []
    for i in range(max((len(c) for c in by_dataset.values()), default=0)):
        names = sorted(name for name, c in by_dataset.items() if i < len(c))
        rng.shuffle(names)
        out.extend(by_dataset[name][i] for name in names)
    return out
