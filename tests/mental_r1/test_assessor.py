import asyncio
import math

import pytest

from tests.fake_engine import FakeEngine

# ----------------------------------------------------------------------- the engine requests an assessment sends
GENERATED = "They have felt low for weeks.</stimulus>\n"


def recording_engine(tokenizer, logprob):
    """The shared fake engine (tests/fake_engine.py) answering every scoring request from `logprob(prefix,
    token)` and every generation with GENERATED; it records the requests."""
    return FakeEngine(tokenizer, reasoning=GENERATED, logprob=logprob)


def test_no_reasoning_scores_the_labels_at_an_empty_reasonings_commit_point(tokenizer):
    from mental_r1.assessor import Assessor, GenerationOptions
    from mental_r1.contract import build_prompt, commit_prefix
    from mental_r1.tasks import TASKS

    task = TASKS["DR"]
    engine = recording_engine(tokenizer, lambda prefix, tok: -(tok % 5) / 2)
    a = asyncio.run(Assessor(engine, tokenizer, max_model_len=2048).assess(
        "I have not slept in weeks.", task, GenerationOptions(max_tokens=0), "r"))
    (req,) = engine.requests  # no generation: one scoring request (DR branches once)
    ids = tokenizer(build_prompt(tokenizer, "I have not slept in weeks.", task.question, task.label_names),
                    add_special_tokens=False)["input_ids"] + tokenizer(commit_prefix(""), add_special_tokens=False)["input_ids"]
    assert req.prompt_ids == ids and req.params.max_tokens == 1 and req.request_id.startswith("r-score")
    assert a.usage.completion_tokens == 0 and not a.format_valid  # nothing was reasoned
    assert a.label in task.label_names


def trie_branchings(conts: list[list[int]]) -> int:
    """Counted without branch_nodes: token prefixes (at every depth) followed by more than one distinct token."""
    nexts: dict[tuple, set] = {}
    for c in conts:
        for k in range(len(c)):
            nexts.setdefault(tuple(c[:k]), set()).add(c[k])
    return sum(len(v) > 1 for v in nexts.values())


@pytest.mark.parametrize("task_id, branchings", [("DR", 1), ("SAD", 2), ("CAMS", 2), ("t-sid", 1)])
def test_an_assessment_is_one_generation_and_one_request_per_branching_node(tokenizer, task_id, branchings):
    from mental_r1.assessor import Assessor, GenerationOptions
    from mental_r1.contract import commit_prefix
    from mental_r1.label_trie import label_continuations
    from mental_r1.tasks import TASKS

    task = TASKS[task_id]
    conts = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in label_continuations(task)]
    assert trie_branchings(conts) == branchings  # with the shipped tokenizer (27-69 trie nodes before)
    engine = recording_engine(tokenizer, lambda prefix, tok: -((tok * 7 + len(prefix)) % 11) / 3)
    assessor = Assessor(engine, tokenizer, max_model_len=2048)
    a = asyncio.run(assessor.assess("I have not slept in weeks.", task, GenerationOptions(max_tokens=64), "r"))

    gen, *scoring = engine.requests
    assert not gen.params.logprob_token_ids and gen.request_id == "r-gen"
    assert len(scoring) == branchings
    prefix = gen.prompt_ids + tokenizer(commit_prefix(GENERATED), add_special_tokens=False)["input_ids"]
    for prompt, params, *_ in scoring:  # each request: the scoring prefix + a branching node, its children
        node = tuple(prompt[len(prefix):])
        assert prompt[:len(prefix)] == prefix and params.max_tokens == 1
        assert params.logprob_token_ids == sorted({c[len(node)] for c in conts if tuple(c[:len(node)]) == node})
    assert len({r.request_id for r in engine.requests}) == len(engine.requests)  # request ids are unique
    # the label log-probabilities are normalised over the label set
    assert sum(math.exp(v) for v in a.label_logprobs.values()) == pytest.approx(1.0)
    assert set(a.label_logprobs) == set(task.label_names) and a.label in task.label_names



class SeededEngine(FakeEngine):
    """A recording engine whose generation depends on the request's seed (None = greedy)."""

    def __init__(self, tokenizer, logprob, texts):
        super().__init__(tokenizer, logprob=logprob)
        self.texts = texts

    def reasoning_for(self, request):
        return self.texts[request.params.seed]


@pytest.mark.parametrize("greedy_p_yes", [0.3, 0.7])
def test_a_decision_rule_scores_direct_and_sampled_reasonings_and_shows_the_one_that_agrees(tokenizer, greedy_p_yes):
    """DR with the rule (direct weight 1, 2 samples): the greedy generation and the direct scoring first; the label
    is the direct one. When the greedy reasoning's own commit point disagrees with it (P(yes) 0.3), two seeded
    sampled generations follow, each scored at its own commit point, and the stages shown are those of the
    reasoning whose commit point prefers the label most; when it agrees (0.7), it is shown and nothing is sampled."""
    from mental_r1.assessor import SAMPLE_TOP_P, Assessor, GenerationOptions
    from mental_r1.calibration import Calibration
    from mental_r1.contract import commit_prefix
    from mental_r1.decision import DecisionRule
    from mental_r1.label_trie import label_continuations
    from mental_r1.tasks import TASKS

    task = TASKS["DR"]
    texts = {None: "They are fine.</stimulus>\n", 1: "They cry daily.</stimulus>\n",
             2: "They sleep badly.</stimulus>\n"}
    conts = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in label_continuations(task)]
    k = next(k for k in range(len(conts[0])) if conts[0][k] != conts[1][k])
    yes_tok = conts[task.label_names.index("yes")][k]
    ids = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]
    p_yes = {tuple(ids(commit_prefix(""))): 0.8, tuple(ids(commit_prefix(texts[None]))): greedy_p_yes,
             tuple(ids(commit_prefix(texts[1]))): 0.9, tuple(ids(commit_prefix(texts[2]))): 0.6}

    def logprob(prefix, tok):
        p = next(v for tail, v in sorted(p_yes.items(), key=lambda kv: -len(kv[0]))  # the longest matching prefix
                 if tuple(prefix[len(prefix) - k - len(tail):len(prefix) - k]) == tail)
        return math.log(p if tok == yes_tok else 1 - p)

    engine = SeededEngine(tokenizer, logprob, texts)
    cal = Calibration(decision={"DR": DecisionRule(direct_weight=1.0, samples=2)}, sample_temperature=0.7)
    a = asyncio.run(Assessor(engine, tokenizer, cal, max_model_len=2048).assess(
        "I have not slept in weeks.", task, GenerationOptions(max_tokens=64), "r"))
    gens = [(r.params, r.request_id) for r in engine.generations()]
    assert a.label == "yes" and math.exp(a.label_logprobs["yes"]) == pytest.approx(0.8)  # the direct decision
    assert a.reasoning_agrees
    if greedy_p_yes < 0.5:
        assert sorted(rid for _, rid in gens) == ["r-gen", "r-gen1", "r-gen2"]
        sampled = [params for params, rid in gens if rid != "r-gen"]
        assert {p.seed for p in sampled} == {1, 2}
        assert {(p.temperature, p.top_p) for p in sampled} == {(0.7, SAMPLE_TOP_P)}
        assert len(engine.requests) == 3 + 4  # three generations, four scorings (three reasonings + direct)
        assert a.stages[0].text == "They cry daily."  # the candidate whose commit point gives "yes" 0.9
        assert a.usage.completion_tokens == sum(len(ids(t)) for t in texts.values())  # the three generations
        assert a.usage.reasonings == 3
    else:
        assert [rid for _, rid in gens] == ["r-gen"] and len(engine.requests) == 1 + 2  # greedy, two scorings
        assert a.stages[0].text == "They are fine." and a.usage.reasonings == 1


def test_the_model_screen_scores_each_risk_task_in_one_request_at_the_branching_node(tokenizer):
    """risk_probabilities: prompt + empty reasoning + the label sentences' shared start, scored at the tokens
    where the labels part ways; P(risk label) is their renormalised probability (no engine: a recording one)."""
    from mental_r1.assessor import Assessor
    from mental_r1.contract import build_prompt, commit_prefix
    from mental_r1.label_trie import label_continuations
    from mental_r1.screen.model import MODEL_SCREEN
    from mental_r1.tasks import TASKS

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    first = {}  # task → {label: first distinguishing token}
    for t in MODEL_SCREEN:
        conts = [ids(c) for c in label_continuations(TASKS[t])]
        assert trie_branchings(conts) == 1, f"{t}: the labels part ways more than once"
        k = next(k for k in range(len(conts[0])) if len({tuple(c[:k + 1]) for c in conts}) > 1)
        first[t] = {lab: c[k] for lab, c in zip(TASKS[t].label_names, conts)}

    def logprob(prefix, token):  # unnormalised on purpose: half of the mass is on other tokens
        task = next(t for t in MODEL_SCREEN if token in first[t].values())
        risk = first[task][MODEL_SCREEN[task][0]]
        return math.log(0.5 * (0.4 if token == risk else 0.6 / (len(first[task]) - 1)))

    engine = recording_engine(tokenizer, logprob)
    got = asyncio.run(Assessor(engine, tokenizer, max_model_len=2048).risk_probabilities(
        "I feel low.", list(MODEL_SCREEN), "r1"))
    assert got == pytest.approx(dict.fromkeys(MODEL_SCREEN, 0.4))
    requests = engine.requests
    assert len(requests) == len(MODEL_SCREEN) and len({r.request_id for r in requests}) == len(MODEL_SCREEN)
    for prefix, params, *_ in requests:
        task = TASKS["t-sid"] if len(params.logprob_token_ids) == 4 else TASKS["Irf:perceived_burdensomeness"]
        prompt = ids(build_prompt(tokenizer, "I feel low.", task.question, task.label_names)) + ids(commit_prefix(""))
        assert prefix[:len(prompt)] == prompt  # no reasoning: the commit point right after the prompt
        shared = prefix[len(prompt):]  # "This post shows" for t-sid, nothing for Irf ("Yes"/"No" differ at once)
        assert all(c[:len(shared)] == shared for c in (ids(x) for x in label_continuations(task)))


# ------------------------------------------------------------------- exactness against full logits (slow)
REASONING = "<stimulus>Weeks without sleep.</stimulus>\n<primary_appraisal>It matters to them."


def constrained_reference(model, prefix: list[int], conts: list[list[int]]) -> list[float]:
    """log P(c) under decoding constrained to `conts`, from transformers' full logits (fp32), without the
    trie code: at every position of c, c's token renormalised over the tokens some continuation sharing c's
    tokens so far puts there (one allowed token: a factor 1)."""
    import torch

    out = []
    for c in conts:
        with torch.no_grad():
            logits = model(torch.tensor([prefix + c])).logits[0, len(prefix) - 1:len(prefix) + len(c) - 1]
        logp = torch.log_softmax(logits.float(), -1)  # (len(c), V): the position before each token of c
        total = 0.0
        for k in range(len(c)):
            allowed = sorted({d[k] for d in conts if d[:k] == c[:k]})
            total += float(logp[k, c[k]] - torch.logsumexp(logp[k, allowed], 0))
        out.append(total)
    return out


@pytest.mark.slow
def test_engine_scoring_matches_constrained_decoding_from_full_logits(tmp_path, base_model_dir, tokenizer):
    """The real engine's label log-probabilities (one request per branching node, bf16) equal the
    constrained-decoding log-probabilities computed from transformers' full logits on the same checkpoint,
    for a yes/no task (one branching node) and SAD (9 labels, two branching nodes) and t-sid."""
    import os

    import torch
    from transformers import AutoModelForCausalLM

    from mental_r1.assessor import Assessor
    from mental_r1.contract import build_prompt, commit_prefix
    from mental_r1.engine import build_engine
    from mental_r1.label_trie import label_continuations
    from mental_r1.tasks import TASKS
    from training.models import build_tiny_model

    # a random tiny Llama's next-token distributions are almost uniform; its tied embeddings ×10 give label
    # distributions far from it (DR ≈ 0.3/0.7, SAD from 0.001 to 0.7 here). Stored in bf16, so the engine
    # (bf16) and the reference (fp32) read the same weights.
    src = build_tiny_model(base_model_dir, tmp_path / "tiny", seed=0)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model = model.to(torch.bfloat16)
    model.save_pretrained(tmp_path / "peaked")
    tokenizer.save_pretrained(tmp_path / "peaked")
    model = model.float().eval()

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    tasks = ["DR", "SAD", "t-sid"]
    prefixes = {t: ids(build_prompt(tokenizer, "I have not slept properly in weeks and nothing feels worth doing.",
                                    TASKS[t].question, TASKS[t].label_names)) + ids(commit_prefix(REASONING))
                for t in tasks}
    conts = {t: [ids(c) for c in label_continuations(TASKS[t])] for t in tasks}
    reference = {t: constrained_reference(model, prefixes[t], conts[t]) for t in tasks}

    async def served():
        engine = build_engine(str(tmp_path / "peaked"), max_model_len=2048, kv_cache_gib=0.25, max_num_seqs=8)
        try:
            assessor = Assessor(engine, tokenizer)
            return {t: await assessor.label_logprobs(prefixes[t], label_continuations(TASKS[t]), f"exact-{t}")
                    for t in tasks}
        finally:
            engine.shutdown()

    for k, v in {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(k, v)
    got = asyncio.run(served())
    for t in tasks:
        probs = [math.exp(v) for v in reference[t]]
        assert sum(probs) == pytest.approx(1.0) and max(probs) - min(probs) > 0.1, (t, probs)  # far from uniform
        assert sum(math.exp(v) for v in got[t]) == pytest.approx(1.0, abs=1e-6)
        # bf16 vs fp32 on these weights moves torch's own log-probabilities by ≤ 0.01 nats (measured)
        assert got[t] == pytest.approx(reference[t], abs=0.05), (t, got[t], reference[t])
        assert [math.exp(v) for v in got[t]] == pytest.approx(probs, abs=0.01), t


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
    from mental_r1.assessor import Assessor

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
    from mental_r1.assessor import MIN_REASONING_TOKENS, ContextOverflow
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
    from mental_r1.assessor import reasoning_budget

    assert reasoning_budget(prompt_tokens=300, requested=384, scoring_margin=40, max_model_len=2048) == 384
    assert reasoning_budget(prompt_tokens=1800, requested=384, scoring_margin=40, max_model_len=2048) == 208
    assert reasoning_budget(prompt_tokens=2000, requested=384, scoring_margin=40, max_model_len=2048) == 8


def test_a_text_that_fits_nowhere_says_how_long_it_may_be(assessor):
    from mental_r1.assessor import ContextOverflow
    from mental_r1.tasks import TASKS

    with pytest.raises(ContextOverflow, match=r"the text is 4000 tokens long; .* at most \d+ tokens of text"):
        assessor.reasoning_budget("7" * 4000, TASKS["DR"], 32)


def test_a_budget_under_the_minimum_is_kept_when_it_was_asked_for(assessor):
    """The service's warm-up asks for 8 reasoning tokens (the API's minimum is 32): that is not an overflow."""
    from mental_r1.tasks import get_task

    assert assessor.reasoning_budget("Today was an ordinary day at work.", get_task("DR"), 8) == 8
