"""Start the two servers the benchmarks compare, as subprocesses on free loopback ports.

Both get the same engine limits (max model length, KV-cache bytes, concurrent sequences, eager mode, prefix
caching, dtype, seed), so the only difference left is the API in front of the engine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from mental_r1.engine import CPU_BLOCK_SIZE, EngineLimits, compute_dtype, cpu_threads_bind

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServerLimits(EngineLimits):
    """The service's engine limits (mental_r1.engine.EngineLimits, same defaults), plus what a server
    subprocess is started with."""

    # the KV block size mental_r1.engine.build_engine sets on CPU (None: vLLM's default), given to vLLM too
    block_size: int | None = CPU_BLOCK_SIZE
    # VLLM_CPU_OMP_THREADS_BIND of both servers. Default: what the README's service chooses on this machine
    # (every core this process may use, mental_r1.engine.cpu_threads_bind: "0-1" on 2 cores), so the
    # benchmark measures the service users run. "nobind" lets the kernel place the threads (machines
    # shared with other engines).
    omp_threads_bind: str = field(default_factory=lambda: cpu_threads_bind({}, os.sched_getaffinity(0)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server subprocess with its log file; `ready_path` answers 200 once it serves."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log: Path, env: dict[str, str]):
        self.name, self.port, self.ready_path, self.log_path = name, port, ready_path, log
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("wb")
        full_env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", **env}
        self.proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, budget: float = 600) -> float:
        t0 = time.time()
        while time.time() - t0 < budget:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    return time.time() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready in {budget} s:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def rss_bytes(self) -> int:
        """Resident memory of the server and all its children (API process, engine core, workers)."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()


def start_service(model: Path, limits: ServerLimits, log: Path, **env: str) -> Proc:
    """Our service: `python -m app --model M` (POST /assess)."""
    port = free_port()
    argv = [sys.executable, "-m", "app", "--model", str(model), "--port", str(port),
            "--max-model-len", str(limits.max_model_len), "--kv-cache-gib", str(limits.kv_cache_gib),
            "--max-num-seqs", str(limits.max_num_seqs), "--dtype", limits.dtype]  # "auto": the service decides
    return Proc("service", argv, port, "/readyz", log,
                {"VLLM_CPU_OMP_THREADS_BIND": limits.omp_threads_bind, **env})


def start_vllm_server(model: Path, limits: ServerLimits, log: Path) -> Proc:
    """vLLM's own OpenAI-compatible server with the engine arguments mental_r1.engine.build_engine uses."""
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", "bench", "--host", "127.0.0.1", "--port", str(port),
            "--dtype", compute_dtype(limits.dtype),
            "--max-model-len", str(limits.max_model_len),
            "--kv-cache-memory-bytes", str(int(limits.kv_cache_gib * 2**30)),
            "--max-num-seqs", str(limits.max_num_seqs), "--enforce-eager", "--enable-prefix-caching",
            "--seed", "0"]  # access log left on, as in our service
    if limits.block_size:
        argv += ["--block-size", str(limits.block_size)]
    return Proc("vllm", argv, port, "/health", log, {"VLLM_CPU_OMP_THREADS_BIND": limits.omp_threads_bind})
