"""Eager mode against torch.compile for the service's vLLM engine: start time, one request, 32 at once.

    .venv/bin/python -m bench.eager                      # ~6 min on 2 idle cores; bench/results/eager-<date>.json

Why: the service runs vLLM with `enforce_eager` (MENTAL_R1_ENFORCE_EAGER, default true: the engine starts in
~35 s and needs no C++ compiler). On CPU, vLLM otherwise compiles the model with torch.compile (inductor), which
fuses the small per-token ops of a 135M model; whether that pays on this machine, and what it costs at start,
is what this records. Each mode runs in its own subprocess, one after the other, with the service's engine
settings otherwise (the machine's dtype, KV cache 1 GiB, prefix caching, seed 0, the service's CPU binding), on the
same prompts (IMHI test posts in the service's prompt format, greedy, up to `--max-tokens` new tokens): a
warm-up, then `--sequential` prompts one at a time (latency), then `--prompts` others all at once (throughput).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

from bench.dtype import service_prompts
from bench.engines import add_child_arguments, run_variants
from bench.provenance import REPO, provenance

MODES = {"eager": True, "compiled": False}  # mode → enforce_eager


def run_mode(model: str, enforce_eager: bool, sequential: list[str], batch: list[str], max_tokens: int) -> dict:
    """In this (child) process: start one engine, then time one-at-a-time and all-at-once generation."""
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    from vllm import LLM, SamplingParams

    from mental_r1.engine import CPU_BLOCK_SIZE, compute_dtype, cpu_threads_bind

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_threads_bind({}, os.sched_getaffinity(0)))
    t0 = time.perf_counter()
    llm = LLM(model=model, dtype=compute_dtype(), max_model_len=2048, kv_cache_memory_bytes=2**30, max_num_seqs=32,
              enforce_eager=enforce_eager, enable_prefix_caching=True, seed=0, block_size=CPU_BLOCK_SIZE)
    start_s = time.perf_counter() - t0
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    llm.generate(batch[:1], params, use_tqdm=False)  # warm-up (compiles the remaining shapes, if any)
    latencies, tokens_one = [], 0
    for prompt in sequential:
        t = time.perf_counter()
        out = llm.generate([prompt], params, use_tqdm=False)
        latencies.append(time.perf_counter() - t)
        tokens_one += len(out[0].outputs[0].token_ids)
    t = time.perf_counter()
    out = llm.generate(batch, params, use_tqdm=False)
    batch_s = time.perf_counter() - t
    tokens_batch = sum(len(o.outputs[0].token_ids) for o in out)
    return {"enforce_eager": enforce_eager, "engine_start_s": round(start_s, 1),
            "one_at_a_time": {"prompts": len(sequential), "median_s": round(statistics.median(latencies), 3),
                              "max_s": round(max(latencies), 3),
                              "tokens_per_s": round(tokens_one / sum(latencies), 1)},
            "all_at_once": {"prompts": len(batch), "seconds": round(batch_s, 2), "generated_tokens": tokens_batch,
                            "tokens_per_s": round(tokens_batch / batch_s, 1)},
            "texts": [o.outputs[0].text for o in out]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.eager", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "imhi")
    p.add_argument("--sequential", type=int, default=8, help="prompts sent one at a time")
    p.add_argument("--prompts", type=int, default=32, help="prompts sent at once")
    p.add_argument("--output", type=Path, default=None, help="default: bench/results/eager-<date>.json")
    add_child_arguments(p, "MODE")
    args = p.parse_args(argv)
    if args.child:  # the result goes to a file: vLLM writes its own lines to stdout
        mode, prompts = args.child
        data = json.loads(Path(prompts).read_text())
        Path(f"{prompts}.{mode}").write_text(json.dumps(
            run_mode(args.model, MODES[mode], data["sequential"], data["batch"], args.max_tokens)))
        return
    started = os.getloadavg()
    if args.model is None:
        from mental_r1.default_model import ensure_default_model

        args.model = str(ensure_default_model())
    prompts = service_prompts(args.data_dir, args.model, args.sequential + args.prompts)
    result: dict = {"modes": run_variants("bench.eager", args.model, args.max_tokens, MODES,
                                          {"sequential": prompts[:args.sequential], "batch": prompts[args.sequential:]})}
    eager, compiled = result["modes"]["eager"], result["modes"]["compiled"]
    result["compiled_over_eager"] = {
        "one_at_a_time_tokens_per_s": round(compiled["one_at_a_time"]["tokens_per_s"]
                                            / eager["one_at_a_time"]["tokens_per_s"], 2),
        "all_at_once_tokens_per_s": round(compiled["all_at_once"]["tokens_per_s"]
                                          / eager["all_at_once"]["tokens_per_s"], 2),
        "engine_start_s": round(compiled["engine_start_s"] / eager["engine_start_s"], 2)}
    same = sum(a == b for a, b in zip(eager.pop("texts"), compiled.pop("texts"), strict=True))
    result["same_greedy_text"] = f"{same}/{args.prompts}"
    result.update({"model": args.model, "provenance": provenance(started)})
    out = args.output or REPO / "bench" / "results" / f"eager-{dt.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
