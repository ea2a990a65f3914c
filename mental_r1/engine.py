"""The vLLM engine behind an Assessor: its arguments, its limits, its dtype and the CPU cores its threads run on.

`build_engine` is the one place an AsyncLLM is made for assessments (the service, `mental-r1 assess`,
training/evaluate.py, screen_eval.py, decision_sweep.py, all through mental_r1/loading.py); bench/servers.py
gives vLLM's own server the same arguments.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

CPU_BLOCK_SIZE = 32


@dataclass(frozen=True)
class EngineLimits:
    """What the engine may hold: the context, the KV cache, the sequences decoded at once."""

    max_model_len: int = 2048
    kv_cache_gib: float = 1.0
    max_num_seqs: int = 32
    enforce_eager: bool = True
    # the weights' and KV cache's dtype; "auto": compute_dtype() (bf16 where it is fast, else fp32)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"


def native_bf16(machine: str | None = None, *, avx512_bf16: bool | None = None, amx: bool | None = None,
                cuda: bool | None = None) -> bool:
    """Whether bf16 runs at full speed here: a GPU; an x86-64 CPU with AVX512-BF16 or AMX; other CPUs as vLLM
    assumes (bf16). The keyword arguments replace what is read off this machine (for tests).

    x86-64 CPUs with AVX2 only (many EPYC and older Xeon machines) have no bf16 arithmetic: PyTorch and vLLM
    convert on every op. Measured on a 2-core AVX2 project machine (`python -m bench.dtype`, 2026-12-07): a
    1024x1024 matmul at 172 GFLOP/s in fp32 against 0.9 in bf16, and the Mental-R1 checkpoint in vLLM decoding
    125.7 tokens/s in fp32 against 33.2 in bf16 (16 IMHI posts at once, greedy, 128 tokens). On the
    AVX512-BF16 machines the notes were measured on, bf16 is the faster one (docs/benchmarks.md,
    ../shared/notes/cpu-compute-budget.md)."""
    import torch

    if cuda if cuda is not None else torch.cuda.is_available():
        return True
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return True
    if avx512_bf16 is None:
        avx512_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    if amx is None:
        amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return avx512_bf16 or amx


def compute_dtype(requested: str = "auto") -> str:
    """The dtype to load weights in: `requested` unless it is "auto", then "bfloat16" where bf16 is native
    (native_bf16), else "float32"."""
    if requested != "auto":
        return requested
    return "bfloat16" if native_bf16() else "float32"


def cpu_threads_bind(environ: Mapping[str, str], cores: Iterable[int]) -> str | None:
    """The VLLM_CPU_OMP_THREADS_BIND value to set: every core in `cores` (the ones this process may use) as
    vLLM's id list ("0-1", "0,2-3"), or None when the environment already has a value (it wins, "nobind"
    included).

    vLLM-CPU's default ("auto") keeps one core per engine rank out of the OpenMP threads for its scheduler
    process (`reserve_cpu_num=1`): on a 2-core machine the model gets one core, 1.5x slower than both
    (issue 20). With an explicit list vLLM binds exactly those cores; VLLM_CPU_NUM_OF_RESERVED_CPU then no
    longer matters (vllm/utils/ompmultiprocessing.py reads it in "auto" mode only)."""
    if environ.get("VLLM_CPU_OMP_THREADS_BIND"):
        return None
    runs: list[list[int]] = []
    for c in sorted(set(cores)):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    assert runs, "no CPU core to bind the engine's threads to"
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def build_engine(model: str, *, max_model_len: int, kv_cache_gib: float, max_num_seqs: int,
                 max_queued_requests: int | None = None, enforce_eager: bool = True, dtype: str = "auto",
                 seed: int = 0):
    """An AsyncLLM for `model` (vllm-cpu on CPU machines, vllm on GPUs).

    On CPU the engine's OpenMP threads are bound to every core this process may use, unless
    VLLM_CPU_OMP_THREADS_BIND says otherwise (cpu_threads_bind). The engine core process reads it when it
    starts its worker, with the environment it inherited when AsyncLLM spawned it (inside from_engine_args),
    so the value is set in this process's environment for the engine's creation only: a later engine in the
    same process (training/rollout.py's, "nobind") chooses its own."""
    from vllm import AsyncEngineArgs
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    bind = None
    if current_platform.is_cpu() and hasattr(os, "sched_getaffinity"):
        bind = cpu_threads_bind(os.environ, os.sched_getaffinity(0))
    args = AsyncEngineArgs(
        model=model, tokenizer=model, dtype=compute_dtype(dtype), max_model_len=max_model_len,
        kv_cache_memory_bytes=int(kv_cache_gib * 2**30), max_num_seqs=max_num_seqs,
        max_num_queued_reqs=max_queued_requests, enforce_eager=enforce_eager,
        enable_prefix_caching=True, seed=seed, enable_log_requests=False,
        # Label scoring sends 1-token requests (one per branching node of the label trie) over the cached
        # prefix, and the prefix cache holds whole blocks only: every request recomputes the prefix's last
        # partial block. With vLLM's CPU default of 128-token blocks that recomputation cost more than the
        # generation (bench/serve.py, when every trie node was a request); 32 is the smallest block the
        # CPU attention kernel takes. GPUs keep their default (16).
        block_size=CPU_BLOCK_SIZE if current_platform.is_cpu() else None,
    )
    if bind is None:
        return AsyncLLM.from_engine_args(args)
    log.info("binding the engine's threads to cores %s (set VLLM_CPU_OMP_THREADS_BIND to choose)", bind)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind
    try:
        return AsyncLLM.from_engine_args(args)
    finally:
        os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
