"""The label distribution at a completion's commit point, from the policy's own logits (no vLLM engine).

This is what the service decides on, computed the way the service computes it (mental_r1/assessor.py): decoding
constrained to the task's label set. The label continuations (`label sentence</mental_state>`,
contract.label_continuation) form a trie of token ids; at every node where they part (a *branch point*, more
than one child) the next-token logits are soft-maxed over the children only, and a label's probability is
the product over the branch points on its path. Tokens that every remaining label shares have probability 1
under the constraint, so they are never scored.

    P(label) = Π_{n ∈ branch points on label's path} softmax(logits_n[children(n)])[label's child at n]

Where it is read: prompt ids + ids of `commit_prefix(completion)` (tokenized apart, as the service does),
followed by the label tokens up to each branch point. For every IMHI task one forward suffices: yes/no
tasks part at the first label token (the logits at the commit point itself), SAD/CAMS/t-sid part after a
shared "This post shows" and again deeper on one path; one *probe* sequence per deepest branch point
covers every branch point above it.

Cost: the completions of one prompt come consecutively (a GRPO group), so the prompt is run once and its
KV cache reused for each completion (cropped back after each), i.e. ~prompt + G·(reasoning + a few tokens)
positions per group, without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from mental_r1.contract import commit_prefix, label_continuation
from mental_r1.label_trie import Node, branch_nodes


def probe_nodes(nodes: Mapping[Node, Sequence[int]]) -> list[Node]:
    """The branch points that lie below no other one: reading the logits along `prefix + probe` gives the
    logits at every branch point on the probe's path (each is a prefix of some probe)."""
    return sorted(n for n in nodes if not any(m != n and m[:len(n)] == n for m in nodes))


def constrained_log_probs(conts: Sequence[Sequence[int]], node_logits: Mapping[Node, torch.Tensor]) -> torch.Tensor:
    """log P(label) of each continuation under decoding constrained to the label set (L,), from the full
    next-token logits (V,) at each branch point."""
    nodes = branch_nodes(conts)
    missing = [n for n in nodes if n not in node_logits]
    assert not missing, f"no logits for branch points {missing[:2]}"
    local = {n: torch.log_softmax(node_logits[n].float()[list(kids)], dim=-1) for n, kids in nodes.items()}
    out = []
    for c in conts:
        terms = [local[tuple(c[:k])][nodes[tuple(c[:k])].index(c[k])] for k in range(len(c)) if tuple(c[:k]) in nodes]
        out.append(torch.stack(terms).sum() if terms else torch.zeros(()))
    return torch.stack(out)


@contextmanager
def eval_mode(model: torch.nn.Module):
    """No dropout while scoring; the previous mode is restored (TRL reads `model.training` to name its logs)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class LabelScorer:
    """P(label) at the commit point of each (prompt, completion), from a transformers causal LM."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._label_sets: dict[tuple[str, ...], tuple[list[list[int]], dict[Node, tuple[int, ...]], list[Node]]] = {}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _label_set(self, label_texts: tuple[str, ...]):
        """(continuation ids, branch points, probes) of a label set, computed once."""
        if label_texts not in self._label_sets:
            conts = [self._ids(label_continuation(t)) for t in label_texts]
            nodes = branch_nodes(conts)
            self._label_sets[label_texts] = conts, nodes, probe_nodes(nodes)
        return self._label_sets[label_texts]

    @torch.no_grad()
    def probabilities(self, model, prompts: Sequence[str], completions: Sequence[str],
                      label_texts: Sequence[Sequence[str]],
                      autocast: Callable[[], AbstractContextManager] = nullcontext) -> list[list[float]]:
        """For each row, the probability of each label (in `label_texts` order) at the completion's commit
        point. `prompts` are the chat-templated prompt strings (ending in the prefill); consecutive rows with
        the same prompt share its KV cache."""
        assert len(prompts) == len(completions) == len(label_texts)
        device = next(model.parameters()).device
        out: list[list[float]] = []
        cache, cached_prompt, prompt_len = None, None, 0
        with eval_mode(model), autocast():
            for prompt, completion, labels in zip(prompts, completions, label_texts):
                if prompt != cached_prompt:
                    ids = torch.tensor([self._ids(prompt)], device=device)
                    cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
                    cached_prompt, prompt_len = prompt, ids.size(1)
                conts, nodes, probes = self._label_set(tuple(labels))
                prefix = self._ids(commit_prefix(completion))
                node_logits: dict[Node, torch.Tensor] = {}
                for probe in probes:
                    seq = torch.tensor([prefix + list(probe)], device=device)
                    logits = model(input_ids=seq, past_key_values=cache, use_cache=True,
                                   logits_to_keep=len(probe) + 1).logits[0]  # (len(probe)+1, V)
                    cache.crop(-seq.size(1))  # back to the prompt alone
                    assert cache.get_seq_length() == prompt_len
                    for n in nodes:
                        if probe[:len(n)] == n:
                            node_logits[n] = logits[len(n)]  # kept[j] predicts the token after prefix + probe[:j]
                out.append(constrained_log_probs(conts, node_logits).exp().tolist())
        return out
