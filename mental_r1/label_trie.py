"""How a task's label is read at the commit point: decoding constrained to the task's label continuations.

Shared by the service (mental_r1/assessor.py: log-probabilities from vLLM at each branch point), RL's dense reward
(training/label_scoring.py: from the policy's logits) and bench/serve.py, so the three cannot drift.

The label continuations (`LABEL SENTENCE</mental_state>`, contract.label_continuation) form a trie of token
ids. Only the nodes where they part (more than one child) carry information about which label the model
prefers: under the constraint a node with one child is followed by it with probability 1. At each branch
node the model's next-token log-probabilities are renormalised over the node's children, and a label's
log-probability is the sum of these terms along its path (the chain rule). Every continuation must end in a
leaf: the end of a continuation is not a token, so one that is a strict prefix of another could not be scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mental_r1.contract import label_continuation
from mental_r1.tasks import Task

Node = tuple[int, ...]


def label_continuations(task: Task) -> list[str]:
    """What is scored at the commit point for each label of `task`, in its label order."""
    return [label_continuation(lab.text) for lab in task.labels]


def branch_nodes(conts: Sequence[Sequence[int]]) -> dict[Node, tuple[int, ...]]:
    """Trie node (the token prefix shared so far) → its children (the distinct next tokens, sorted), for the
    nodes with more than one child. Raises ValueError for a label set that cannot be scored: an empty
    continuation, two identical ones, or one that is a strict prefix of another."""
    children: dict[Node, set[int]] = {}
    for c in conts:
        if not c:
            raise ValueError("an empty label continuation cannot be scored")
        for k in range(len(c)):
            children.setdefault(tuple(c[:k]), set()).add(c[k])
    ends = [tuple(c) for c in conts]
    if len(set(ends)) != len(ends):
        raise ValueError("two labels have the same token sequence; they cannot be told apart")
    inner = [i for i, e in enumerate(ends) if e in children]
    if inner:
        raise ValueError(f"continuation {inner[0]}'s tokens are a strict prefix of another's: its end cannot be "
                         "scored as a token; end every continuation with the same closing tag")
    return {node: tuple(sorted(kids)) for node, kids in children.items() if len(kids) > 1}


def constrained_logprobs(conts: Sequence[Sequence[int]], table: Mapping[Node, Mapping[int, float]]) -> list[float]:
    """log P(continuation) under decoding constrained to `conts`, per continuation; the exponentials sum to 1.

    `table`: branch node → the model's log P(token | prefix + node) for (at least) each of the node's children,
    in any normalisation (only differences within a node matter; other tokens listed are ignored)."""
    norm = {}
    for node, lps in table.items():
        kids = [lps[k] for k in {c[len(node)] for c in conts if tuple(c[:len(node)]) == node}]
        top = max(kids)
        norm[node] = top + math.log(sum(math.exp(v - top) for v in kids))
    return [sum(table[n][c[k]] - norm[n] for k in range(len(c)) if (n := tuple(c[:k])) in table) for c in conts]
