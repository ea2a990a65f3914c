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

    got = asyncio.run(Stub(None, tokenizer, max_model_len=2048).risk_probabilities("I feel low.", list(MODEL_SCREEN), "r1"))
    assert got == pytest.approx(dict.fromkeys(MODEL_SCREEN, 0.4))
    assert len(requests) == len(MODEL_SCREEN) and len({r[2] for r in requests}) == len(MODEL_SCREEN)
    for prefix, candidates, _ in requests:
        task = TASKS["t-sid"] if len(candidates) == 4 else TASKS["Irf:perceived_burdensomeness"]
        prompt = ids(build_prompt(tokenizer, "I feel low.", task.question, task.label_names)) + ids(commit_prefix(""))
        assert prefix[:len(prompt)] == prompt  # no reasoning: the commit point right after the prompt
        shared = prefix[len(prompt):]  # "This post shows" for t-sid, nothing for Irf ("Yes"/"No" differ at once)
        assert all(c[:len(shared)] == shared for c in (ids(x) for x in label_continuations(task)))


# ------------------------------------------------------------------------------------------ token budget
# ~4,000-character posts (the default character limit) that tokenize to 1.5-8x as many tokens as English
LONG_POSTS = {
    "en": "I have not slept properly in weeks and nothing feels worth doing anymore. ",
    "de": "Ich habe seit Wochen nicht richtig geschlafen und nichts fühlt sich mehr lohnenswert an. ",
    "ru": "Я уже несколько недель нормально не сплю, и ничего больше не кажется стоящим. ",
    "hi": "मैं हफ्तों से ठीक से सो नहीं पाया हूँ और अब कुछ भी करने लायक नहीं लगता। ",
    "zh": "我已经好几个星期没有好好睡觉了，什么事情都觉得不值得做。",
    "digits": "31415926535897932384626433832795028841971693993751",
    "emoji": "😢🙃💔 ",
}


@pytest.fixture(scope="module")
def assessor(tokenizer):
    from app.assessor import Assessor

    return Assessor(None, tokenizer, max_model_len=2048)  # no engine: the budget needs the tokenizer only


def worst_case_scoring_prompt(assessor, text, task, budget) -> int:
    """Length of the longest scoring request `assess` can send after a generation of `budget` tokens that
    stopped mid-stage (commit_prefix then closes the stage and appends <mental_state>)."""
    from mental_r1.contract import commit_prefix

    filler = assessor._ids("<primary_appraisal>" + "They feel worn out and alone, and " * 400)[:budget]
    generated = assessor.tokenizer.decode(filler)
    prefix_ids = assessor._prompt_ids(text, task) + assessor._ids(commit_prefix(generated))
    longest = max(len(assessor._ids(lab.text + "</mental_state>")) for lab in task.labels)
    return len(prefix_ids) + longest - 1  # the last scoring node stops one token before the label's end


@pytest.mark.parametrize("lang", list(LONG_POSTS))
@pytest.mark.parametrize("task_id", ["DR", "SAD", "t-sid", "CAMS"])
def test_long_posts_get_a_shorter_budget_or_a_422_message_never_an_engine_error(assessor, lang, task_id):
    from app.assessor import MIN_REASONING_TOKENS, ContextOverflow
    from mental_r1.tasks import TASKS

    task = TASKS[task_id]
    text = (LONG_POSTS[lang] * 4000)[:4000]
    try:
        budget = assessor.reasoning_budget(text, task, 384)
    except ContextOverflow as e:
        msg = str(e)
        assert lang != "en"
        assert "shorten the text" in msg and "2048 tokens" in msg and LONG_POSTS[lang][:10] not in msg
        # the announced length fits (it is an estimate: "about")
        chars = int(msg.split("about ")[1].split(" characters")[0])
        assert 0 < chars < len(text)
        fitted = text[: int(chars * 0.95)]
        budget = assessor.reasoning_budget(fitted, task, 384)
        assert budget >= MIN_REASONING_TOKENS
        text = fitted
    assert MIN_REASONING_TOKENS <= budget <= 384
    assert budget == 384 or lang != "en"
    # every engine request fits the context: vLLM refuses prompt_len >= max_model_len
    assert len(assessor._prompt_ids(text, task)) + budget < 2048
    assert worst_case_scoring_prompt(assessor, text, task, budget) < 2048


def test_budget_arithmetic():
    from app.assessor import reasoning_budget

    assert reasoning_budget(prompt_tokens=300, requested=384, scoring_margin=40, max_model_len=2048) == 384
    assert reasoning_budget(prompt_tokens=1800, requested=384, scoring_margin=40, max_model_len=2048) == 208
    assert reasoning_budget(prompt_tokens=2000, requested=384, scoring_margin=40, max_model_len=2048) == 8


def test_a_text_that_fits_nowhere_says_how_long_it_may_be(assessor):
    from app.assessor import ContextOverflow
    from mental_r1.tasks import TASKS

    with pytest.raises(ContextOverflow, match=r"the text is 4000 tokens long; .* at most \d+ tokens of text"):
        assessor.reasoning_budget("7" * 4000, TASKS["DR"], 32)


def test_a_budget_under_the_minimum_is_kept_when_it_was_asked_for(assessor):
    """The service's warm-up asks for 8 reasoning tokens (the API's minimum is 32): that is not an overflow."""
    from mental_r1.tasks import get_task

    assert assessor.reasoning_budget("Today was an ordinary day at work.", get_task("DR"), 8) == 8
