"""Serving throughput: our POST /assess against vLLM's own server and a plain transformers loop.

    .venv/bin/python -m bench.serve --data-dir ../shared/data/imhi --prompts 1:3,8:16,32:32  # the recorded run (~10 min)
    .venv/bin/python -m bench.serve --data-dir ../shared/data/imhi --repeats 1 --prompts 1:2,8:8,32:32  # smoke

The same IMHI test posts (one task each: the task of the post's dataset) go through
  (a) our service, `python -m app --model M`: POST /assess = one greedy reasoning generation stopping at
      the commit point (`<mental_state>`, or `</answer>` if the model skips it) + label scoring (one 1-token
      decode request per branching node of the label-sentence token trie: `scoring_requests_per_task` in
      the results),
  (b) vLLM's OpenAI-compatible server on the same checkpoint and engine limits: POST /v1/completions with
      the exact prompt string our service builds (contract.build_prompt), the same max_tokens,
      temperature 0 and the same stop strings - generation only, no label scoring,
  (b2) the same vLLM server driven by a client that also does (a)'s label scoring (the same 1-token requests
      at the trie's branching nodes, through /v1/completions with logprob_token_ids): the same engine work
      as (a), so (a)/(b2)
      isolates what our API layer costs, while (a)/(b) also charges (a) for the scoring it does and (b) not,
  (c) transformers `generate` in this process: batch 1, greedy, same max_tokens and stop strings,
  (a0) our service with the crisis screen's model source off (an empty thresholds file), so (a)/(a0) is
      what the screen costs (issue 12: at most 15 %). (a) screens with the thresholds of
      MENTAL_R1_SCREEN_THRESHOLDS_FILE (default: the shipped file); to price the screen with every risk task
      on, point it at a file that enables them all.
(a), (b) and (b2) run at concurrency 1, 8 and 32; (c) runs sequentially on the concurrency-1 prompts.
Both servers stay up for the whole session and every round runs the systems back to back (alternating
which goes first), so drifting machine load hits all of them alike; each round uses fresh posts, so no
round reads the prefix cache of an earlier one. Medians over rounds and the ratios go to
bench/results/serve-<date>.json; `uptime` is recorded around every round.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.provenance import provenance
from bench.servers import REPO, Proc, ServerLimits, start_service, start_vllm_server
from mental_r1.contract import COMMIT_TAG, build_prompt, commit_prefix
from mental_r1.data import load_split
from mental_r1.engine import compute_dtype
from mental_r1.label_trie import branch_nodes, constrained_logprobs, label_continuations
from mental_r1.tasks import get_task


@dataclass(frozen=True)
class Item:
    key: str  # dataset/row, to pair the systems' answers
    text: str
    task_id: str
    prompt: str  # what our service builds for (text, task)


def pick_items(data_dir: Path, tokenizer, n: int, max_chars: int, seed: int) -> list[Item]:
    """n test posts, round-robin over the datasets (seeded), posts of at most max_chars characters."""
    rows = [e for e in load_split(data_dir, "test") if len(e.text) <= max_chars]
    by_ds: dict[str, list] = {}
    for i, e in enumerate(rows):
        by_ds.setdefault(e.dataset, []).append((i, e))
    rng = random.Random(seed)
    for v in by_ds.values():
        rng.shuffle(v)
    picked: list[Item] = []
    while len(picked) < n:
        for ds in sorted(by_ds):
            if by_ds[ds] and len(picked) < n:
                i, e = by_ds[ds].pop()
                picked.append(Item(f"{ds}/{i}", e.text, e.task.id,
                                   build_prompt(tokenizer, e.text, e.task.question, e.task.label_names)))
    return picked


def stats(latencies: list[float], tokens: list[int], wall: float, errors: int) -> dict:
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return {"n": len(lat), "errors": errors, "wall_s": round(wall, 3),
            "assessments_per_s": round(len(lat) / wall, 4), "p50_s": round(statistics.median(lat), 3),
            "p95_s": round(q[94], 3), "generated_tokens": sum(tokens),
            "generated_tokens_per_s": round(sum(tokens) / wall, 2)}


async def run_http(url: str, items: list[Item], concurrency: int, request) -> tuple[dict, dict[str, int]]:
    """Send every item with at most `concurrency` in flight; `request(client, item)` → generated tokens."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    toks: dict[str, int] = {}
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        async def one(item: Item):
            nonlocal errors
            async with sem:
                t0 = time.perf_counter()
                try:
                    toks[item.key] = await request(client, item)
                except (httpx.HTTPError, AssertionError, KeyError):
                    errors += 1
                    return
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(it) for it in items))
        wall = time.perf_counter() - t0
    return stats(lat, list(toks.values()), wall, errors), toks


STOP = [COMMIT_TAG, "</answer>"]  # the Assessor's stop strings


def service_request(max_tokens: int):
    async def call(client: httpx.AsyncClient, item: Item) -> int:
        r = await client.post("/assess", json={"text": item.text, "task": item.task_id, "max_tokens": max_tokens})
        assert r.status_code == 200, r.text[:300]
        return r.json()["usage"]["completion_tokens"]
    return call


def vllm_scoring_request(max_tokens: int, tokenizer):
    """(b2): (b) plus the service's label scoring done by the client through vLLM's own API.

    The same branching nodes of the label-token trie as Assessor.label_logprobs, one /v1/completions request
    per node (token-id prompt = scoring prefix + node, max_tokens 1, logprob_token_ids = the node's
    children), so (a) vs (b2) is the same engine work with only the API layer different.
    """
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    async def node(client: httpx.AsyncClient, prompt_ids: list[int], children: list[int]) -> dict[int, float]:
        r = await client.post("/v1/completions", json={
            "model": "bench", "prompt": prompt_ids, "max_tokens": 1, "temperature": 0, "logprobs": 1,
            "logprob_token_ids": children, "return_tokens_as_token_ids": True})
        assert r.status_code == 200, r.text[:300]
        top = r.json()["choices"][0]["logprobs"]["top_logprobs"][0]
        return {int(k.split(":", 1)[1]): v for k, v in top.items()}

    async def call(client: httpx.AsyncClient, item: Item) -> int:
        r = await client.post("/v1/completions", json={
            "model": "bench", "prompt": item.prompt, "max_tokens": max_tokens, "temperature": 0,
            "stop": STOP, "include_stop_str_in_output": True})
        assert r.status_code == 200, r.text[:300]
        out = r.json()
        prefix = ids(item.prompt) + ids(commit_prefix(out["choices"][0]["text"]))
        conts = [ids(c) for c in label_continuations(get_task(item.task_id))]
        nodes = branch_nodes(conts)
        got = await asyncio.gather(*(node(client, prefix + list(n), kids) for n, kids in nodes.items()))
        scores = constrained_logprobs(conts, dict(zip(nodes, got)))
        assert all(s <= 0 for s in scores), scores
        return out["usage"]["completion_tokens"]
    return call


def vllm_request(max_tokens: int):
    async def call(client: httpx.AsyncClient, item: Item) -> int:
        r = await client.post("/v1/completions", json={
            "model": "bench", "prompt": item.prompt, "max_tokens": max_tokens, "temperature": 0,
            "stop": STOP, "include_stop_str_in_output": True})
        assert r.status_code == 200, r.text[:300]
        return r.json()["usage"]["completion_tokens"]
    return call


class TransformersLoop:
    """(c): the checkpoint in transformers, greedy `generate`, one prompt at a time."""

    def __init__(self, model: Path, tokenizer, max_tokens: int):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch, self.tok, self.max_tokens = torch, tokenizer, max_tokens
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, compute_dtype())).eval()

    def run(self, items: list[Item]) -> tuple[dict, dict[str, int]]:
        lat, toks = [], {}
        t0 = time.perf_counter()
        for it in items:
            t1 = time.perf_counter()
            ids = self.tok(it.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with self.torch.inference_mode():
                out = self.model.generate(ids, max_new_tokens=self.max_tokens, do_sample=False,
                                          stop_strings=STOP, tokenizer=self.tok,
                                          pad_token_id=self.tok.pad_token_id)
            toks[it.key] = int(out.shape[1] - ids.shape[1])
            lat.append(time.perf_counter() - t1)
        return stats(lat, list(toks.values()), time.perf_counter() - t0, 0), toks


def scoring_requests(tokenizer, task_ids) -> dict[str, int]:
    """Engine requests of (a)'s label scoring per task (and of (b2)'s): its label trie's branching nodes."""
    return {t: len(branch_nodes([tokenizer(c, add_special_tokens=False)["input_ids"]
                                 for c in label_continuations(get_task(t))])) for t in sorted(set(task_ids))}


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def median_summary(rounds: list[dict], concurrencies: list[int]) -> dict:
    """Per system and concurrency: the median of each metric over rounds; then the ratios."""
    summary: dict = {}
    for system in ("a_service", "a0_service_no_screen", "b_vllm", "b2_vllm_plus_scoring", "c_transformers"):
        for c in concurrencies:
            runs = [r["results"][system][str(c)] for r in rounds if str(c) in r["results"].get(system, {})]
            if not runs:
                continue
            summary.setdefault(system, {})[str(c)] = {
                k: round(statistics.median(run[k] for run in runs), 4)
                for k in ("assessments_per_s", "p50_s", "p95_s", "generated_tokens_per_s")
            } | {"rounds": len(runs), "errors": sum(run["errors"] for run in runs)}
    ratios: dict = {}
    a, b, cc = summary.get("a_service", {}), summary.get("b_vllm", {}), summary.get("c_transformers", {}).get("1")
    for c in concurrencies:
        if str(c) in a and str(c) in b:
            ratios[f"a/b throughput @{c}"] = round(a[str(c)]["assessments_per_s"] / b[str(c)]["assessments_per_s"], 3)
            ratios[f"a/b generated tokens/s @{c}"] = round(
                a[str(c)]["generated_tokens_per_s"] / b[str(c)]["generated_tokens_per_s"], 3)
        b2 = summary.get("b2_vllm_plus_scoring", {})
        if str(c) in a and str(c) in b2:
            ratios[f"a/b2 throughput @{c} (same engine work)"] = round(
                a[str(c)]["assessments_per_s"] / b2[str(c)]["assessments_per_s"], 3)
        if str(c) in a and cc:
            ratios[f"a@{c}/c throughput"] = round(a[str(c)]["assessments_per_s"] / cc["assessments_per_s"], 3)
        a0 = summary.get("a0_service_no_screen", {})
        if str(c) in a and str(c) in a0:  # the crisis screen's cost: > 1 = slower with it
            ratios[f"a/a0 p50 latency @{c} (screen cost)"] = round(a[str(c)]["p50_s"] / a0[str(c)]["p50_s"], 3)
            ratios[f"a0/a throughput @{c} (screen cost)"] = round(
                a0[str(c)]["assessments_per_s"] / a[str(c)]["assessments_per_s"], 3)
    # paired per-round ratios too: each round's (a) and (b) ran back to back under the same load
    for c in concurrencies:
        per_round = [r["results"]["a_service"][str(c)]["assessments_per_s"]
                     / r["results"]["b_vllm"][str(c)]["assessments_per_s"]
                     for r in rounds if str(c) in r["results"].get("a_service", {})
                     and str(c) in r["results"].get("b_vllm", {})]
        if per_round:
            ratios[f"a/b throughput @{c}, median of per-round ratios"] = round(statistics.median(per_round), 3)
        per_round = [r["results"]["a_service"][str(c)]["p50_s"] / r["results"]["a0_service_no_screen"][str(c)]["p50_s"]
                     for r in rounds if str(c) in r["results"].get("a_service", {})
                     and str(c) in r["results"].get("a0_service_no_screen", {})]
        if per_round:
            ratios[f"a/a0 p50 latency @{c} (screen cost), median of per-round ratios"] = round(
                statistics.median(per_round), 3)
    return {"medians": summary, "ratios": ratios}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="checkpoint folder; default: the converted base model")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "imhi")
    p.add_argument("--prompts", default="1:4,8:16,32:32", help="concurrency:prompts per round, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="rounds (each with fresh posts)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--max-chars", type=int, default=1500, help="skip posts longer than this")
    p.add_argument("--systems", default="a,b,b2,c")
    p.add_argument("--kv-cache-gib", type=float, default=1.0)
    p.add_argument("--max-num-seqs", type=int, default=32)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--omp-threads-bind", default=None,
                   help="VLLM_CPU_OMP_THREADS_BIND of both servers; default: the service's own choice, every core "
                        "this process may use ('0-1' on 2 cores); 'nobind' on machines shared with other engines")
    p.add_argument("--output", type=Path, default=None, help="default: bench/results/serve-<date>.json")
    p.add_argument("--label", default="", help="free text stored in the results (e.g. 'before fix')")
    args = p.parse_args()

    from transformers import AutoTokenizer

    from mental_r1.base_model import ensure_base_model

    model = args.model or ensure_base_model()
    tok = AutoTokenizer.from_pretrained(model)
    plan = {int(c): int(n) for c, n in (x.split(":") for x in args.prompts.split(","))}
    concs = sorted(plan)
    systems = set(args.systems.split(","))
    per_round = sum(plan.values())
    pool = pick_items(args.data_dir, tok, per_round * args.repeats + 1, args.max_chars, seed=0)
    warm, pool = pool[0], pool[1:]
    per_task = scoring_requests(tok, [it.task_id for it in pool])
    limits = ServerLimits(max_model_len=args.max_model_len, kv_cache_gib=args.kv_cache_gib,
                          max_num_seqs=args.max_num_seqs,
                          **({"omp_threads_bind": args.omp_threads_bind} if args.omp_threads_bind else {}))
    logs = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    started = os.getloadavg()
    date = dt.datetime.now().strftime("%Y-%m-%d")
    out_path = args.output or REPO / "bench" / "results" / f"serve-{date}.json"

    servers: dict[str, Proc] = {}
    try:
        t0 = time.time()
        if "a" in systems:
            # vLLM's server has no deadline; lift ours (120 s) so an overloaded machine gives slow answers, not 504s
            servers["a_service"] = start_service(model, limits, logs / "service.log",
                                                 MENTAL_R1_REQUEST_TIMEOUT_S="900")
        if "a0" in systems:  # the same service without the crisis screen's model source
            (logs / "no-screen.json").write_text("{}")
            servers["a0_service_no_screen"] = start_service(
                model, limits, logs / "service-no-screen.log", MENTAL_R1_REQUEST_TIMEOUT_S="900",
                MENTAL_R1_SCREEN_THRESHOLDS_FILE=str(logs / "no-screen.json"))
        if "b" in systems:
            servers["b_vllm"] = start_vllm_server(model, limits, logs / "vllm.log")
        startup = {k: round(s.wait_ready(), 1) for k, s in servers.items()}
        print(f"servers ready in {time.time() - t0:.0f} s {startup}; logs in {logs}", flush=True)
        requests = {"a_service": service_request(args.max_tokens), "a0_service_no_screen": service_request(
                    args.max_tokens), "b_vllm": vllm_request(args.max_tokens),
                    "b2_vllm_plus_scoring": vllm_scoring_request(args.max_tokens, tok)}
        if "b2" in systems:  # the same vLLM server, driven by a client that also scores the labels
            servers["b2_vllm_plus_scoring"] = servers["b_vllm"]
        for name, s in servers.items():  # one warm-up request each (not measured)
            asyncio.run(run_http(s.url, [warm], 1, requests[name]))
        loop = TransformersLoop(model, tok, args.max_tokens) if "c" in systems else None
        if loop:
            loop.run([warm])

        rounds = []
        for r in range(args.repeats):
            rnd = {"round": r, "uptime_before": uptime(), "results": {}, "agreement": {}}
            for c in concs:
                items = [pool.pop() for _ in range(plan[c])]
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                toks = {}
                for name in order:
                    res, toks[name] = asyncio.run(run_http(servers[name].url, items, c, requests[name]))
                    rnd["results"].setdefault(name, {})[str(c)] = res
                    print(f"round {r} c={c:>2} {name:<15} {json.dumps(res)}", flush=True)
                if loop and c == 1:
                    res, toks["c_transformers"] = loop.run(items)
                    rnd["results"].setdefault("c_transformers", {})["1"] = res
                    print(f"round {r} c= 1 c_transformers  {json.dumps(res)}", flush=True)
                if "a_service" in toks and "b_vllm" in toks:  # greedy on one engine: same lengths expected
                    same = sum(toks["a_service"].get(k) == v for k, v in toks["b_vllm"].items())
                    rnd["agreement"][str(c)] = f"{same}/{len(toks['b_vllm'])} equal completion lengths (a vs b)"
            rnd["uptime_after"] = uptime()
            rnd["rss_bytes"] = {k: s.rss_bytes() for k, s in servers.items()}
            print(f"round {r} done; {rnd['uptime_after']}", flush=True)
            rounds.append(rnd)
    finally:
        for s in servers.values():
            s.stop()

    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"), "label": args.label,
        "command": "python -m bench.serve " + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "model": str(model), "max_tokens": args.max_tokens, "prompts_per_round": plan,
        "engine_limits": vars(limits), "server_startup_s": startup,
        # besides one generation per assessment, and the crisis screen's requests in (a)
        "scoring_requests_per_task": per_task,
        "machine": {"nproc": os.cpu_count(), "uptime_end": uptime()}, "provenance": provenance(started),
        "rounds": rounds, **median_summary(rounds, concs),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"medians": result["medians"], "ratios": result["ratios"]}, indent=2))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
