"""The fake engine (tests/fake_engine.py) gives the route tests what they configure: through the real Assessor,
the label probabilities it is told, the reasoning cut as vLLM cuts it, and its failures."""

import asyncio
import math

import pytest

from tests.fake_engine import LEAN, REASONING, FakeEngine, leaning


@pytest.mark.parametrize("task_id, label, p", [("DR", "no", 0.9), ("SAD", "work", 0.55), ("CAMS", "medication", 0.3),
                                               ("t-sid", "PTSD", 0.7)])
def test_the_assessor_reads_the_label_probabilities_it_was_given(tokenizer, task_id, label, p):
    from mental_r1.assessor import Assessor, GenerationOptions
    from mental_r1.tasks import TASKS

    engine = FakeEngine(tokenizer, probabilities={task_id: leaning(task_id, label, p)})
    a = asyncio.run(Assessor(engine, tokenizer, max_model_len=2048).assess(
        "I have not slept in weeks.", TASKS[task_id], GenerationOptions(), "r"))
    assert a.label == label and a.probabilities == pytest.approx(leaning(task_id, label, p))
    assert [r.task for r in engine.requests] == [task_id] * len(engine.requests)
    assert a.format_valid and a.stages[3].text == "They withdraw and feel hopeless."  # REASONING's reaction


def test_defaults_cuts_and_failures(tokenizer):
    from vllm.v1.engine.exceptions import EngineDeadError

    from mental_r1.assessor import Assessor, GenerationOptions
    from mental_r1.tasks import TASKS

    engine = FakeEngine(tokenizer, reasoning=REASONING + "I am certain.</mental_state>")
    assessor = Assessor(engine, tokenizer, max_model_len=2048)
    a = asyncio.run(assessor.assess("A calm day.", TASKS["DR"], GenerationOptions(), "r"))
    assert a.label == "yes" and math.isclose(a.confidence, LEAN)  # the first label leans
    assert engine.generations()[0].post == "A calm day."
    assert a.usage.completion_tokens == len(tokenizer(REASONING, add_special_tokens=False)["input_ids"])  # stopped
    short = asyncio.run(assessor.assess("A calm day.", TASKS["DR"], GenerationOptions(max_tokens=8), "s"))
    assert short.usage.completion_tokens == 8 and not short.format_valid  # cut at max_tokens
    engine.fail = lambda post: EngineDeadError() if "die" in post else None
    asyncio.run(assessor.assess("live", TASKS["DR"], GenerationOptions(max_tokens=64), "t"))
    with pytest.raises(EngineDeadError):
        asyncio.run(assessor.assess("die", TASKS["DR"], GenerationOptions(max_tokens=64), "u"))
