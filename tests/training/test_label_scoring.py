import math

import pytest
import torch

from mental_r1.contract import commit_prefix, format_completion, label_continuation
from mental_r1.label_trie import branch_nodes
from mental_r1.tasks import TASKS, get_task
from training.label_scoring import LabelScorer, constrained_log_probs, probe_nodes
from training.prompts import build_prompt

V = 10


def logits(**values: float) -> torch.Tensor:
    """V logits, -inf-free; token 0 is a decoy with the largest logit (it must be ignored: not a child)."""
    x = torch.zeros(V)
    x[0] = 100.0
    for k, v in values.items():
        x[int(k[1:])] = v
    return x


def test_constrained_probabilities_by_hand():
    # trie: root → {5, 7}; (5,) → {1, 3}; (5, 1) → {2} (a single child: probability 1, never scored)
    conts = [[5, 1, 2], [5, 3], [7]]
    assert branch_nodes(conts) == {(): (5, 7), (5,): (1, 3)}
    assert probe_nodes(branch_nodes(conts)) == [(5,)]
    node_logits = {(): logits(t5=math.log(3.0), t7=0.0),  # P(5) = 3/4, P(7) = 1/4
                   (5,): logits(t1=0.0, t3=math.log(2.0))}  # P(1 | 5) = 1/3, P(3 | 5) = 2/3
    p = constrained_log_probs(conts, node_logits).exp()
    assert p.tolist() == pytest.approx([3 / 4 * 1 / 3, 3 / 4 * 2 / 3, 1 / 4])
    assert p.sum().item() == pytest.approx(1.0)


def test_label_sets_that_cannot_be_scored():
    with pytest.raises(ValueError, match="prefix of another"):
        branch_nodes([[1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match="same token sequence"):
        branch_nodes([[1, 2], [1, 2]])


def test_every_imhi_task_needs_one_probe(tokenizer):
    """yes/no tasks part at the first label token; the others part twice on one path: one forward each."""
    for task in TASKS.values():
        conts = [tokenizer(label_continuation(lab.text), add_special_tokens=False)["input_ids"] for lab in task.labels]
        nodes = branch_nodes(conts)
        assert len(probe_nodes(nodes)) == 1, task.id
        if set(task.label_names) == {"yes", "no"}:
            assert list(nodes) == [()], task.id


def reference_probs(model, tokenizer, prompt: str, completion: str, label_texts) -> list[float]:
    """Independent computation: one full forward per label over prompt + prefix + its whole continuation."""
    ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
    head = ids(prompt) + ids(commit_prefix(completion))
    conts = [ids(label_continuation(t)) for t in label_texts]
    node_logits = {}
    with torch.no_grad():
        for c in conts:
            out = model(input_ids=torch.tensor([head + c])).logits[0]  # (n, V)
            for k in range(len(c)):
                node_logits[tuple(c[:k])] = out[len(head) + k - 1]
    return constrained_log_probs(conts, node_logits).exp().tolist()


def test_scorer_matches_full_forwards_and_shares_the_prompt_cache(tiny_model, tokenizer):
    dr, sad = get_task("DR"), get_task("SAD")
    p_dr = build_prompt(tokenizer, "I cannot sleep and nothing feels worth doing.", dr.question, dr.label_names)
    p_sad = build_prompt(tokenizer, "Exams next week and I am behind.", sad.question, sad.label_names)
    stages = {"stimulus": "Exams.", "primary_appraisal": "It matters.", "secondary_appraisal": "Few resources.",
              "reaction": "Worry.", "mental_state": "x"}
    done = format_completion(stages, "yes")  # reached <mental_state>
    cut = "The post says exams.</stimulus>\n<primary_appraisal>It matters a lot"  # truncated: closed, then committed
    rows = [(p_dr, done, dr), (p_dr, cut, dr), (p_sad, done, sad), (p_sad, cut, sad)]  # groups share a prompt
    tiny_model.train()
    got = LabelScorer(tokenizer).probabilities(tiny_model, [r[0] for r in rows], [r[1] for r in rows],
                                               [[lab.text for lab in r[2].labels] for r in rows])
    assert tiny_model.training  # the mode is restored
    for (prompt, completion, task), probs in zip(rows, got):
        assert len(probs) == len(task.labels) and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == pytest.approx(reference_probs(tiny_model, tokenizer, prompt, completion,
                                                      [lab.text for lab in task.labels]), abs=1e-5)
    assert got[0] != pytest.approx(got[1], abs=1e-6)  # the commit point matters
