"""Load test of the real service: many concurrent clients on loopback for a few minutes.

    .venv/bin/python -m bench.load                                   # tiny random model, 200 clients, 180 s
    .venv/bin/python -m bench.load --model base --clients 200 --duration 300 --max-queued 128

Starts `python -m app` (by default on a tiny random Llama with the real tokenizer: generation is cheap, so
the HTTP layer, admission control and the scoring fan-out are what gets loaded, not the CPU's matmuls) with
MENTAL_R1_MAX_QUEUED_REQUESTS below the number of clients, so admission control must answer 503 on purpose.
Every client loops: POST /assess with a random task list, wait for the answer, back off briefly after a
503. Checked:
  - no 5xx other than admission-control 503s (whose message says so), no transport errors;
  - every request answered exactly once: each response must answer its own request (the tasks, in order,
    and the token budget are random per request), and the service's own counter of answered requests
    (mental_r1_requests_total, by status) must grow by exactly what the clients counted;
  - memory: RSS of the service's process tree, sampled every few seconds, must not keep growing (the last
    fifth of the run against the fifth after warm-up).
Results go to bench/results/load-<date>.json; the exit code is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.provenance import provenance
from bench.servers import REPO, Proc, ServerLimits, start_service
from mental_r1.tasks import TASKS

ADMISSION_MESSAGE = "too many assessments in flight"  # app/routes.py (admission counts tasks)
TEXTS = ("I can't sleep and every small thing at work makes me panic.",
         "We moved to a new city and I have nobody to talk to.",
         "Exams are next week and I feel fine, just a bit busy.",
         "Money is tight and my family keeps arguing about it.")


def tiny_model() -> Path:
    from mental_r1.base_model import cache_dir, ensure_base_model
    from training.models import build_tiny_model

    return build_tiny_model(ensure_base_model(), cache_dir() / "tiny-llama-seed0", seed=0)


def served_counts(metrics_text: str) -> Counter:
    """mental_r1_requests_total summed over tasks, by status."""
    out: Counter = Counter()
    for line in metrics_text.splitlines():
        if line.startswith("mental_r1_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] += float(line.rsplit(" ", 1)[1])
    return out


class Load:
    def __init__(self, url: str, clients: int, duration: float, seed: int):
        self.url, self.clients, self.duration = url, clients, duration
        self.rng = random.Random(seed)
        self.status: Counter = Counter()  # HTTP status → requests
        self.task_status: Counter = Counter()  # HTTP status → tasks (the service counts per task)
        self.problems: Counter = Counter()  # anything that breaks a check, by kind
        self.examples: dict[str, str] = {}
        self.latencies: list[float] = []
        self.sent = self.answered = 0

    def problem(self, kind: str, detail: str) -> None:
        self.problems[kind] += 1
        self.examples.setdefault(kind, detail[:300])

    def check(self, r: httpx.Response, tasks: list[str], max_tokens: int) -> None:
        if r.status_code == 200:
            body = r.json()
            got = [a["task"] for a in body["assessments"]]
            if got != tasks:
                self.problem("answer_to_another_request", f"asked {tasks}, got {got}")
            for a in body["assessments"]:
                if a["label"] not in TASKS[a["task"]].label_names or a["usage"]["completion_tokens"] > max_tokens:
                    self.problem("invalid_assessment", json.dumps(a)[:300])
            if not body["safety"]["disclaimer"]:
                self.problem("no_disclaimer", "")
        elif r.status_code == 503:
            if ADMISSION_MESSAGE not in r.json()["error"]["message"] or "retry-after" not in r.headers:
                self.problem("unexpected_503", r.text)
        else:
            self.problem(f"http_{r.status_code}", r.text)

    async def client(self, http: httpx.AsyncClient, cid: int, stop_at: float) -> None:
        n = 0
        while time.monotonic() < stop_at:
            tasks = self.rng.sample(sorted(TASKS), self.rng.choice((1, 1, 2)))
            max_tokens = self.rng.randint(32, 64)
            text = f"[client {cid} request {n}] {self.rng.choice(TEXTS)}"  # unique text per request
            self.sent += 1
            t0 = time.perf_counter()
            try:
                r = await http.post("/assess", json={"text": text, "tasks": tasks, "max_tokens": max_tokens})
            except httpx.HTTPError as e:
                self.problem("transport_error", f"{type(e).__name__}: {e}")
                continue
            self.answered += 1
            self.status[r.status_code] += 1
            self.task_status[str(r.status_code)] += len(tasks)
            self.check(r, tasks, max_tokens)
            if r.status_code == 200:
                self.latencies.append(time.perf_counter() - t0)
            else:
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # back off after a 503
            n += 1

    async def run(self, server: Proc, sample_every: float = 5.0) -> dict:
        limits = httpx.Limits(max_connections=self.clients + 8, max_keepalive_connections=self.clients + 8)
        async with httpx.AsyncClient(base_url=self.url, timeout=600, limits=limits) as http:
            before = served_counts((await http.get("/metrics")).text)
            rss: list[tuple[float, int]] = []
            t0 = time.monotonic()
            stop_at = t0 + self.duration

            async def sample():
                while time.monotonic() < stop_at + 1:
                    rss.append((round(time.monotonic() - t0, 1), server.rss_bytes()))
                    await asyncio.sleep(sample_every)

            sampler = asyncio.create_task(sample())
            await asyncio.gather(*(self.client(http, i, stop_at) for i in range(self.clients)))
            wall = time.monotonic() - t0
            await sampler
            after = served_counts((await http.get("/metrics")).text)
            in_flight = (await http.get("/metrics")).text
        served = {k: int(after[k] - before.get(k, 0)) for k in after if after[k] - before.get(k, 0)}
        if served != {k: v for k, v in self.task_status.items()}:
            self.problem("server_count_mismatch", f"server counted {served}, clients {dict(self.task_status)}")
        if self.sent != self.answered + self.problems["transport_error"]:
            self.problem("lost", f"sent {self.sent}, answered {self.answered}")
        gauge = next((float(x.rsplit(" ", 1)[1]) for x in in_flight.splitlines()
                      if x.startswith("mental_r1_requests_in_flight ")), None)
        if gauge != 0:
            self.problem("in_flight_not_zero_after_run", str(gauge))
        return {"wall_s": round(wall, 1), "served_by_status_per_task": served, "rss": rss}


def memory_verdict(rss: list[tuple[float, int]], tolerance: float) -> dict:
    """Compare the median RSS of the last fifth of the run with the fifth after warm-up."""
    values = [b for _, b in rss]
    k = max(1, len(values) // 5)
    early, late = statistics.median(values[k:2 * k]), statistics.median(values[-k:])
    growth = (late - early) / early
    return {"early_mib": round(early / 2**20), "late_mib": round(late / 2**20),
            "max_mib": round(max(values) / 2**20), "growth": round(growth, 4), "stable": growth <= tolerance}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (random tiny Llama), 'base', or a checkpoint folder")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    p.add_argument("--max-queued", type=int, default=128, help="MENTAL_R1_MAX_QUEUED_REQUESTS of the service")
    p.add_argument("--memory-tolerance", type=float, default=0.05, help="allowed RSS growth, early→late")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=None, help="default: bench/results/load-<date>.json")
    args = p.parse_args()
    started = os.getloadavg()

    if args.model == "tiny":
        model = tiny_model()
    elif args.model == "base":
        from mental_r1.base_model import ensure_base_model

        model = ensure_base_model()
    else:
        model = Path(args.model)
    log = Path(tempfile.mkdtemp(prefix="bench-load-")) / "service.log"
    server = start_service(model, ServerLimits(kv_cache_gib=0.5), log,
                           MENTAL_R1_MAX_QUEUED_REQUESTS=str(args.max_queued))
    try:
        startup = server.wait_ready()
        load = Load(server.url, args.clients, args.duration, args.seed)
        run = asyncio.run(load.run(server))
    finally:
        server.stop()
    logs = log.read_text(errors="replace")
    if "Traceback" in logs or "unhandled" in logs:
        load.problem("error_in_service_log", logs[logs.find("Traceback"):][:300])
    lat = sorted(load.latencies)
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m bench.load " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                      if v is not None),
        "model": str(model), "clients": args.clients, "duration_s": args.duration,
        "max_queued_requests": args.max_queued, "startup_s": round(startup, 1),
        "requests_sent": load.sent, "responses": load.answered,
        "status_counts": {str(k): v for k, v in sorted(load.status.items())},
        "assessed_per_s": round(load.status[200] / run["wall_s"], 2),
        "latency_200_s": {"p50": round(statistics.median(lat), 3),
                          "p95": round(statistics.quantiles(lat, n=20)[18], 3), "max": round(lat[-1], 3)}
        if len(lat) > 1 else None,
        "memory": memory_verdict(run["rss"], args.memory_tolerance),
        "problems": dict(load.problems), "problem_examples": load.examples, **run,
    }
    result["provenance"] = provenance(started)
    result["passed"] = not load.problems and result["memory"]["stable"] and load.status[200] > 0
    date = dt.datetime.now().strftime("%Y-%m-%d")
    out = args.output or REPO / "bench" / "results" / f"load-{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss"}, indent=2))
    print(f"wrote {out}")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
