"""bf16 against fp32 on this machine: a matmul and the Mental-R1 checkpoint's decoding in vLLM.

    .venv/bin/python -m bench.dtype                      # ~3 min on 2 idle cores; bench/results/dtype-<date>.json

Why: on x86 CPUs with AVX512-BF16 (or AMX) bf16 is several times faster than fp32; on AVX2-only CPUs there
is no bf16 arithmetic at all and it is far slower. mental_r1.engine.compute_dtype picks the dtype from the
CPU; this script records the measurement behind that choice on the machine it runs on (its provenance
names the CPU's vector extensions). Each vLLM engine runs in its own subprocess, one after the other, with
the service's engine settings (bf16/fp32 weights, KV cache 1 GiB, eager, prefix caching, seed 0), on the
same prompts: IMHI test posts in the service's prompt format, greedy, up to `--max-tokens` new tokens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

from bench.engines import add_child_arguments, run_variants
from bench.provenance import REPO, provenance

DTYPES = ("float32", "bfloat16")


def matmul_gflops(dtype: str, n: int = 1024, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n matmul in `dtype` with torch's default threads."""
    import torch

    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def decode(model: str, dtype: str, prompts: list[str], max_tokens: int) -> dict:
    """In this (child) process: one vLLM engine in `dtype`, a warm-up request, then all prompts at once."""
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    from vllm import LLM, SamplingParams

    from mental_r1.engine import CPU_BLOCK_SIZE, cpu_threads_bind

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_threads_bind({}, os.sched_getaffinity(0)))
    llm = LLM(model=model, dtype=dtype, max_model_len=2048, kv_cache_memory_bytes=2**30, max_num_seqs=32,
              enforce_eager=True, enable_prefix_caching=True, seed=0, block_size=CPU_BLOCK_SIZE)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    llm.generate(prompts[:1], params, use_tqdm=False)
    t0 = time.perf_counter()
    out = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in out)
    return {"dtype": dtype, "prompts": len(prompts), "generated_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def service_prompts(data_dir: Path, model: str, n: int) -> list[str]:
    """n IMHI test posts (round-robin over the datasets, one task each) in the service's prompt format."""
    from transformers import AutoTokenizer

    from mental_r1.contract import build_prompt
    from mental_r1.data import load_split

    tok = AutoTokenizer.from_pretrained(model)
    by_dataset: dict[str, list] = {}
    for ex in load_split(data_dir, "test"):
        by_dataset.setdefault(ex.dataset, []).append(ex)
    rows = [ex for group in zip(*by_dataset.values(), strict=False) for ex in group][:n]
    return [build_prompt(tok, ex.text[:1500], ex.task.question, ex.task.label_names) for ex in rows]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dtype", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "imhi")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--output", type=Path, default=None, help="default: bench/results/dtype-<date>.json")
    add_child_arguments(p, "DTYPE")
    args = p.parse_args(argv)
    if args.child:  # the result goes to a file: vLLM writes its own lines to stdout
        dtype, prompts = args.child
        Path(f"{prompts}.{dtype}").write_text(json.dumps(
            decode(args.model, dtype, json.loads(Path(prompts).read_text()), args.max_tokens)))
        return
    started = os.getloadavg()
    if args.model is None:
        from mental_r1.default_model import ensure_default_model

        args.model = str(ensure_default_model())
    result = {"matmul_gflops_1024": {d: round(matmul_gflops(d), 1) for d in DTYPES},
              "vllm_decode": run_variants("bench.dtype", args.model, args.max_tokens, DTYPES,
                                          service_prompts(args.data_dir, args.model, args.prompts))}
    dec = result["vllm_decode"]
    result["fp32_over_bf16"] = {
        "matmul": round(result["matmul_gflops_1024"]["float32"] / result["matmul_gflops_1024"]["bfloat16"], 2),
        "vllm_decode": round(dec["float32"]["tokens_per_s"] / dec["bfloat16"]["tokens_per_s"], 2)}
    from mental_r1.engine import compute_dtype

    result.update({"model": args.model, "compute_dtype_auto": compute_dtype(), "provenance": provenance(started)})
    out = args.output or REPO / "bench" / "results" / f"dtype-{dt.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
