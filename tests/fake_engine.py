"""A stand-in for vLLM's AsyncLLM behind the real Assessor (mental_r1/assessor.py), with the real tokenizer:
every engine request an assessment sends is answered at once, deterministically, and recorded.

    engine = FakeEngine(tokenizer)                                   # each task's first label at 0.6
    engine = FakeEngine(tokenizer, probabilities={"DR": {"yes": 0.9, "no": 0.1}})
    assessor = Assessor(engine, tokenizer, max_model_len=2048)

The Assessor sends two kinds of request (`requests` records each, with the task whose question its prompt asks):
- a generation (no `logprob_token_ids`): answered with `reasoning`, cut after the first stop string and at
  `max_tokens` tokens, as vLLM cuts it;
- a scoring request (`logprob_token_ids`: the children of a branching node of the task's label trie, after the
  commit point): answered with a log-probability per candidate token, set so that decoding constrained to the
  labels gives each label its probability in `probabilities` (task id → label → p; a task not listed gets
  `leaning(task, its first label, LEAN)`). `logprob(prompt ids, token)`, when given, answers instead.

Failures and time, settable at any moment (tests set them after the service's warm-up): `fail` (an exception, or
a function of the post → exception or None) is raised by generate; every request first waits `delay` seconds
(a cancelled wait is recorded in `cancelled`; `running` holds the requests waiting); `health_failures` are raised
by check_health one at a time; shutdown records its timeout in `shutdown_timeouts`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NamedTuple

from mental_r1.label_trie import label_continuations
from mental_r1.tasks import TASKS

LEAN = 0.6  # a task's first label, unless `probabilities` says otherwise
REASONING = ("They describe weeks of poor sleep and low mood.</stimulus>\n"
             "<primary_appraisal>It weighs on their work and friendships.</primary_appraisal>\n"
             "<secondary_appraisal>They see few ways to cope.</secondary_appraisal>\n"
             "<reaction>They withdraw and feel hopeless.</reaction>\n<mental_state>")
_BY_QUESTION = {t.question: t.id for t in TASKS.values()}


def leaning(task_id: str, label: str, p: float) -> dict[str, float]:
    """The label probabilities of a task with `label` at `p` and its other labels sharing the rest equally."""
    names = TASKS[task_id].label_names
    assert label in names, f"{task_id} has no label {label!r}"
    return {lab: p if lab == label else (1 - p) / (len(names) - 1) for lab in names}


class Request(NamedTuple):
    prompt_ids: list[int]
    params: Any  # vllm.SamplingParams
    request_id: str
    task: str | None  # the id of the task whose question the prompt asks (None: no task's)
    post: str  # the post as the prompt quotes it

    @property
    def scoring(self) -> bool:
        return bool(self.params.logprob_token_ids)


class FakeEngine:
    def __init__(self, tokenizer, *, reasoning: str = REASONING,
                 probabilities: dict[str, dict[str, float]] | None = None,
                 logprob: Callable[[list[int], int], float] | None = None,
                 fail: BaseException | Callable[[str], BaseException | None] | None = None, delay: float = 0.0):
        self.tokenizer, self.reasoning, self.logprob = tokenizer, reasoning, logprob
        self.probabilities = probabilities or {}
        self.fail, self.delay = fail, delay
        self.requests: list[Request] = []
        self.running: set[str] = set()
        self.cancelled: list[str] = []
        self.health_failures: list[BaseException] = []
        self.shutdown_timeouts: list[float | None] = []
        self.renderer = SimpleNamespace(render_cmpl_async=self._render)
        self._conts: dict[str, list[tuple[str, list[int]]]] = {}

    # ------------------------------------------------------------------------------------- AsyncLLM's interface
    async def _render(self, prompts) -> list[list[int]]:
        return [list(p["prompt_token_ids"]) for p in prompts]

    async def generate(self, prompt_ids: list[int], params, request_id: str):
        req = Request(list(prompt_ids), params, request_id, *self._read_prompt(prompt_ids))
        self.requests.append(req)
        error = self.fail(req.post) if callable(self.fail) else self.fail
        if error is not None:
            raise error
        self.running.add(request_id)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(request_id)
            raise
        finally:
            self.running.discard(request_id)
        yield SimpleNamespace(finished=True, outputs=[self._scores(req) if req.scoring else self._generation(req)])

    async def check_health(self) -> None:
        if self.health_failures:
            raise self.health_failures.pop(0)

    def shutdown(self, timeout: float | None = None) -> None:
        self.shutdown_timeouts.append(timeout)

    # ------------------------------------------------------------------------------------------ the answers
    def reasoning_for(self, request: Request) -> str:
        """The text a generation request gets (before vLLM's cuts): `reasoning`."""
        return self.reasoning

    def generations(self) -> list[Request]:
        return [r for r in self.requests if not r.scoring]

    def _read_prompt(self, prompt_ids: list[int]) -> tuple[str | None, str]:
        """The task and the post of a prompt built by contract.build_prompt (the last question is the task's)."""
        text = self.tokenizer.decode(prompt_ids)
        head, _, tail = text.rpartition("\nQuestion: ")
        return _BY_QUESTION.get(tail.split("\nOptions:", 1)[0]), head.partition('Post: "')[2].removesuffix('"')

    def _generation(self, req: Request) -> SimpleNamespace:
        text = self.reasoning_for(req)
        for stop in req.params.stop or []:  # the Assessor asks for the stop string in the output
            if (i := text.find(stop)) >= 0:
                text = text[:i + len(stop)]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > req.params.max_tokens:
            ids = ids[:req.params.max_tokens]
            text = self.tokenizer.decode(ids)
        return SimpleNamespace(text=text, token_ids=ids, logprobs=None)

    def _scores(self, req: Request) -> SimpleNamespace:
        tokens = req.params.logprob_token_ids
        values = ({t: self.logprob(req.prompt_ids, t) for t in tokens} if self.logprob is not None
                  else self._label_scores(req))
        step = {t: SimpleNamespace(logprob=values[t]) for t in tokens}
        return SimpleNamespace(text="", token_ids=[tokens[0]], logprobs=[step])

    def _label_scores(self, req: Request) -> dict[int, float]:
        """log P(token) at the branching node the prompt ends in, from the task's label probabilities: a child
        gets the probability of the labels below it, renormalised over the labels below the node."""
        assert req.task is not None, f"scoring request {req.request_id} asks no task's question"
        probs = self.probabilities.get(req.task) or leaning(req.task, TASKS[req.task].label_names[0], LEAN)
        conts = self._continuations(req.task)
        kids = set(req.params.logprob_token_ids)
        for k in range(max(len(c) for _, c in conts) - 1, -1, -1):  # the node: the longest label prefix that fits
            node = req.prompt_ids[len(req.prompt_ids) - k:]
            below = [(lab, c) for lab, c in conts if c[:k] == node and len(c) > k]
            if below and {c[k] for _, c in below} == kids:
                total = sum(probs[lab] for lab, _ in below)
                return {t: math.log(max(sum(probs[lab] for lab, c in below if c[k] == t) / total, 1e-300))
                        for t in kids}
        raise AssertionError(f"scoring request {req.request_id} is at no branching node of {req.task}'s labels")

    def _continuations(self, task_id: str) -> list[tuple[str, list[int]]]:
        if task_id not in self._conts:
            task = TASKS[task_id]
            self._conts[task_id] = [(lab, self.tokenizer(c, add_special_tokens=False)["input_ids"])
                                    for lab, c in zip(task.label_names, label_continuations(task), strict=True)]
        return self._conts[task_id]
