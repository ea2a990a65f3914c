import math

import pytest

from app.assessor import chain_rule, scoring_nodes


def test_scoring_nodes_skip_the_prefix_all_labels_share():
    # "a b c" and "a b d e": node () and (a,) are shared with one child -> cancel; (a,b) branches
    conts = [[1, 2, 3], [1, 2, 4, 5]]
    nodes = scoring_nodes(conts)
    assert nodes == {(1, 2): {3, 4}, (1, 2, 4): {5}}
    # a single continuation of one token still needs nothing: everything is shared
    assert scoring_nodes([[7]]) == {}
    # no shared first token: the root is scored
    assert scoring_nodes([[1], [2, 3]]) == {(): {1, 2}, (2,): {3}}


def test_chain_rule_sums_the_scored_nodes():
    conts = [[1, 2, 3], [1, 2, 4, 5]]
    table = {(1, 2): {3: math.log(0.6), 4: math.log(0.3)}, (1, 2, 4): {5: math.log(0.5)}}
    a, b = chain_rule(conts, table)
    assert a == pytest.approx(math.log(0.6)) and b == pytest.approx(math.log(0.15))


def test_the_model_screen_sends_one_request_per_risk_task_at_the_first_distinguishing_token(tokenizer):
    """risk_probabilities: prompt + empty reasoning + the label sentences' shared start, scored at the tokens
    where the labels part ways; P(risk label) is their softmax (no engine: the 1-token request is stubbed)."""
    import asyncio

    from app.assessor import Assessor, label_continuations
    from mental_r1.contract import build_prompt, commit_prefix
    from mental_r1.screen.model import MODEL_SCREEN
    from mental_r1.tasks import TASKS

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    first = {}  # task → {label: first distinguishing token}
    for t in MODEL_SCREEN:
        conts = [ids(c) for c in label_continuations(TASKS[t])]
        k = next(k for k in range(len(conts[0])) if len({tuple(c[:k + 1]) for c in conts}) > 1)
        first[t] = {lab: c[k] for lab, c in zip(TASKS[t].label_names, conts)}
        assert len(set(first[t].values())) == len(conts), f"{t}: two labels share their first distinguishing token"
    requests = []

    class Stub(Assessor):
        async def _next_token_logprobs(self, prefix, candidates, request_id):
            requests.append((prefix, sorted(candidates), request_id))
            task = next(t for t in MODEL_SCREEN if sorted(first[t].values()) == sorted(candidates))
            risk = first[task][MODEL_SCREEN[task][0]]
            return {c: math.log(0.4 if c == risk else 0.6 / (len(candidates) - 1)) for c in candidates}

    got = asyncio.run(Stub(None, tokenizer).risk_probabilities("I feel low.", list(MODEL_SCREEN), "r1"))
    assert got == pytest.approx(dict.fromkeys(MODEL_SCREEN, 0.4))
    assert len(requests) == len(MODEL_SCREEN) and len({r[2] for r in requests}) == len(MODEL_SCREEN)
    for prefix, candidates, _ in requests:
        task = TASKS["t-sid"] if len(candidates) == 4 else TASKS["Irf:perceived_burdensomeness"]
        prompt = ids(build_prompt(tokenizer, "I feel low.", task.question, task.label_names)) + ids(commit_prefix(""))
        assert prefix[:len(prompt)] == prompt  # no reasoning: the commit point right after the prompt
        shared = prefix[len(prompt):]  # "This post shows" for t-sid, nothing for Irf ("Yes"/"No" differ at once)
        assert all(c[:len(shared)] == shared for c in (ids(x) for x in label_continuations(task)))
