"""`mental-r1`: batch assessment in-process and over HTTP gives the same lines; the console commands.

Fast tests run both backends over the real Assessor on a fake engine (tests/fake_engine.py): in-process, and
through the real app (routes, auth, validation, error envelope) over httpx's ASGI transport. The slow test runs
real engines: the default model over a CSV with bad rows, in-process (interrupted and resumed) and with `--url`
against the live test service.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.batch import BatchError
from app.cli import InProcess, Remote, assess_parser, main, run_assess
from mental_r1.safety import CrisisResources

from .conftest import API_KEY, API_KEY_HASH, REPO
from .fake_service import MODEL, fake_assessor, until_ready

POSTS = [("a1", "Nothing has felt worth doing for weeks and I sleep all day."), ("a2", ""), ("a3", "   "),
         ("a4", "x" * 61), ("a5", "I want to kill myself tonight."), ("a6", "We had a lovely picnic.")]


class FakeInProcess(InProcess):
    """In-process with the fake assessor on `engine` instead of the model load."""

    def __init__(self, args, engine):
        super().__init__(args)
        self.fake_engine = engine

    async def start(self):
        self.assessor, self.model, self.resources = fake_assessor(self.fake_engine), MODEL, CrisisResources()
        return MODEL.model_dump()


def write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows(rows)
    return path


def args_for(tmp_path, out: str, *extra: str):
    return assess_parser().parse_args([str(tmp_path / "in.csv"), "--output", str(tmp_path / out), "--tasks",
                                       "DR,t-sid", "--locale", "en-US", "--concurrency", "2", *extra])


def without_latency(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "latency_ms"} for line in lines]


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def live_app(monkeypatch, fake_app):
    """The real app (routes, auth, errors) with a fake engine behind it; an API key is configured."""
    monkeypatch.setenv("MENTAL_R1_API_KEY", API_KEY)
    return fake_app(max_text_chars=60, api_key_hashes=API_KEY_HASH)


async def through_the_api(app, args):
    async with app.router.lifespan_context(app):
        await until_ready(app)
        return await run_assess(args, Remote(args, transport=httpx.ASGITransport(app)))


def test_in_process_and_url_write_the_same_lines(tmp_path, live_app, fake_engine):
    write_csv(tmp_path / "in.csv", POSTS)
    local_args = args_for(tmp_path, "local.jsonl", "--max-text-chars", "60")
    url_args = args_for(tmp_path, "url.jsonl", "--url", "http://service")
    local = asyncio.run(run_assess(local_args, FakeInProcess(local_args, fake_engine)))
    remote = asyncio.run(through_the_api(live_app, url_args))

    got = read(tmp_path / "local.jsonl")
    assert without_latency(got) == without_latency(read(tmp_path / "url.jsonl"))
    assert local == remote
    assert [line["id"] for line in got] == [p[0] for p in POSTS]
    assert got[1]["error"] == {"type": "invalid_request", "message": "text: Value error, text is empty or only whitespace"}
    assert got[3]["error"] == {"type": "invalid_request", "message": "text is 61 characters; the limit is 60"}
    crisis = got[4]["safety"]
    assert crisis["crisis"] and any("988" in r["contact"] for r in crisis["resources"])  # the locale applies
    assert [a["task"] for a in got[0]["assessments"]] == ["DR", "t-sid"] and "text" not in got[0]
    assert local["rows"] == 6 and local["errors"] == {"invalid_request": 3} and local["crisis"] == 1


def test_in_process_a_refused_row_gets_the_apis_error_and_a_dead_engine_stops_the_run(tmp_path, fake_engine):
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError

    def failure(post):
        if "refuse" in post:
            return VLLMValidationError("The decoder prompt (length 3000) is longer than the maximum model length")
        return EngineDeadError() if "die" in post else None

    fake_engine.fail = failure
    write_csv(tmp_path / "in.csv", [("a", "an ordinary post"), ("b", "refuse this one"), ("c", "an ordinary post")])
    args = args_for(tmp_path, "out.jsonl")
    summary = asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))
    refused = read(tmp_path / "out.jsonl")[1]["error"]
    assert refused["type"] == "invalid_request" and "VLLMValidationError" in refused["message"]
    assert "3000" not in refused["message"] and summary["rows"] == 3 and summary["errors"] == {"invalid_request": 1}
    write_csv(tmp_path / "in.csv", [("d", "now the engine will die")])
    args = args_for(tmp_path, "dead.jsonl")
    with pytest.raises(BatchError, match="the inference engine died; rerun the same command to resume"):
        asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))


def test_a_finished_output_is_not_redone(tmp_path, fake_engine):
    write_csv(tmp_path / "in.csv", POSTS[:2])
    args = args_for(tmp_path, "out.jsonl")
    asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))
    first = (tmp_path / "out.jsonl").read_bytes()
    summary = asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))
    assert (tmp_path / "out.jsonl").read_bytes() == first and summary["rows"] == 2


def test_dataset_ids_name_all_of_their_tasks_in_process_over_http_and_on_resume(tmp_path, live_app, fake_engine):
    write_csv(tmp_path / "in.csv", POSTS[:1])
    tasks = ["Irf:thwarted_belongingness", "Irf:perceived_burdensomeness", "DR"]
    local = args_for(tmp_path, "local.jsonl", "--tasks", "Irf,DR,Irf:perceived_burdensomeness")
    asyncio.run(run_assess(local, FakeInProcess(local, fake_engine)))
    remote = args_for(tmp_path, "url.jsonl", "--tasks", "Irf,DR", "--url", "http://service")
    asyncio.run(through_the_api(live_app, remote))
    for out in ("local.jsonl", "url.jsonl"):
        assert [a["task"] for a in read(tmp_path / out)[0]["assessments"]] == tasks, out
    # the expanded list is what the output holds, so the shorthand resumes it and another list does not
    resumed = args_for(tmp_path, "local.jsonl", "--tasks", ",".join(tasks))
    assert asyncio.run(run_assess(resumed, FakeInProcess(resumed, fake_engine)))["rows"] == 1
    other = args_for(tmp_path, "local.jsonl", "--tasks", "Irf")
    with pytest.raises(BatchError, match="holds assessments of tasks"):
        asyncio.run(run_assess(other, FakeInProcess(other, fake_engine)))


def test_bad_options_fail_before_any_work(tmp_path, fake_engine):
    write_csv(tmp_path / "in.csv", POSTS[:1])
    for extra, fragment in [(["--tasks", "DR,nope"], "unknown task"), (["--tasks", "MultiWD,Irf,DR"], "at most 8"),
                            (["--max-tokens", "5"], "max_tokens"),
                            (["--locale", "not a locale"], "locale")]:
        args = assess_parser().parse_args([str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.jsonl"), *extra])
        with pytest.raises(BatchError, match=fragment):
            asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))
    assert not (tmp_path / "o.jsonl").exists() and not fake_engine.requests


def test_url_with_a_wrong_key_stops_with_a_message(tmp_path, live_app, monkeypatch):
    write_csv(tmp_path / "in.csv", POSTS[:1])
    monkeypatch.setenv("MENTAL_R1_API_KEY", "wrong")
    args = args_for(tmp_path, "out.jsonl", "--url", "http://service")
    with pytest.raises(BatchError, match="invalid API key.*MENTAL_R1_API_KEY"):
        asyncio.run(through_the_api(live_app, args))


def test_url_retries_503_and_429_then_takes_the_answer(tmp_path):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/tasks":
            return httpx.Response(200, json=[{"id": "DR"}])
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"status": "ready", "model": MODEL.model_dump()})
        if calls.count("/assess") == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {"type": "unavailable",
                                                                                       "message": "full"}})
        if calls.count("/assess") == 2:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(504, json={"error": {"type": "timeout", "message": "exceeded its 1 s deadline"}})

    write_csv(tmp_path / "in.csv", POSTS[:1])
    args = assess_parser().parse_args([str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.jsonl"), "--url", "http://s"])
    asyncio.run(run_assess(args, Remote(args, transport=httpx.MockTransport(handler))))
    assert calls.count("/assess") == 3
    assert read(tmp_path / "o.jsonl")[0]["error"] == {"type": "timeout", "message": "exceeded its 1 s deadline"}


def test_the_readme_example_file_and_pandas_snippet(tmp_path, capsys, fake_engine):
    out = tmp_path / "posts.jsonl"
    args = assess_parser().parse_args([str(REPO / "docs/examples/posts.csv"), "-o", str(out), "--tasks", "DR,t-sid"])
    summary = asyncio.run(run_assess(args, FakeInProcess(args, fake_engine)))
    assert summary["rows"] == 8 and summary["errors"] == {"invalid_request": 1}
    code = next(b for b in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL) if "read_json" in b)
    exec(code.replace("runs/posts.jsonl", str(out)), {})  # noqa: S102 - the README's own example
    printed = capsys.readouterr().out
    assert "p5" in printed.split("crisis:")[1] and "t-sid" in printed and "DR" in printed


def test_console_script_and_commands(capsys):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mental-r1"] == "app.cli:main"
    main([])
    assert "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])  # the service's own flags
    assert e.value.code == 0 and "--kv-cache-gib" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown command 'bogus'"):
        main(["bogus"])


# ---------------------------------------------------------------------------------------------- real engines

def cli(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "assess", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.mark.slow
def test_batch_interrupted_and_resumed_in_process_gives_the_labels_of_url_to_the_live_service(tmp_path, server):
    """The embedded default model over a CSV with bad rows: sent to the live test service with --url (the
    reference), then assessed in-process, interrupted by SIGINT and resumed by the same command. One file
    serves both checks (resume, and in-process = --url), so only two engines start (~30 s each): the two
    in-process runs; the --url run goes beside the first one's start."""
    rows = [("p1", "I cannot get out of bed and nothing I used to love feels worth it anymore."),
            ("p2", ""),
            ("p3", "Had a great weekend hiking with friends, feeling rested and happy."),
            ("p4", " \n "),
            ("p5", "y" * 2001),  # over the service's 2,000 characters
            ("p6", "Work has been crushing me lately and I barely sleep before deadlines.")]
    src = write_csv(tmp_path / "in.csv", rows)
    # 2 rows in flight (in-process: 2 engine sequences too; the service admits 4 tasks: 2 rows x 2 tasks): p6
    # starts only once p1 or p3 is done, so it is still running when p1's line is written and the SIGINT is sent.
    # 32 tokens, the smallest reasoning budget: nothing here reads the reasoning.
    common = [str(src), "--tasks", "DR,dreaddit", "--max-tokens", "32", "--concurrency", "2"]
    in_process = [*common, "--kv-cache-gib", "0.5", "--max-text-chars", "2000"]

    # the reference runs in a thread beside the in-process run's engine start (~40 s of one core)
    pool = ThreadPoolExecutor(1)
    remote_run = pool.submit(cli, *common, "--output", str(tmp_path / "remote.jsonl"), "--url", server.url,
                             env={**os.environ, "MENTAL_R1_API_KEY": API_KEY})
    pool.shutdown(wait=False)

    part = tmp_path / "part.jsonl"
    # SIGINT as a terminal's Ctrl-C delivers it: a child inherits an ignored SIGINT, so this process must not
    # ignore it while starting the child (exec resets a handler, never SIG_IGN)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "assess", *in_process, "--output", str(part)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)

    def lines_written() -> int:
        return len(part.read_bytes().splitlines()) if part.exists() else 0

    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and lines_written() < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # p1 (assessed) and p2 (an error) are written
    _, err = proc.communicate(timeout=120)
    written = part.read_bytes()
    assert proc.returncode != 0 and "run the same command to resume" in err, \
        f"returncode {proc.returncode}, {lines_written()} lines: {err[-2000:]}"
    assert 2 <= len(written.splitlines()) < len(rows)

    remote = remote_run.result()
    assert remote.returncode == 0, remote.stderr[-3000:]
    ref = read(tmp_path / "remote.jsonl")

    resumed = cli(*in_process, "--output", str(part))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = read(part)
    assert part.read_bytes().startswith(written[:written.rfind(b"\n") + 1])  # finished lines kept as they were
    assert [line["row"] for line in got] == list(range(len(rows)))  # each row once, in order
    assert [line["id"] for line in got] == [r[0] for r in rows]
    assert {i for i, line in enumerate(got) if "error" in line} == {1, 3, 4}
    assert "limit is 2000" in got[4]["error"]["message"] and "empty" in got[1]["error"]["message"]
    assert resumed.stdout.splitlines()[0] == remote.stdout.splitlines()[0] == \
        "rows 6: 3 assessed, 3 errors (invalid_request 3)"
    assert "DR (n=3" in resumed.stdout and "dreaddit (n=3" in resumed.stdout
    assert re.search(r"6/6 \[.*(row/s|s/row)\]", resumed.stderr)  # the progress bar: count, rate and time left
    for a, b in zip(got, ref, strict=True):  # in-process (either run) = the service, row by row
        assert a["id"] == b["id"] and a.get("error") == b.get("error") and set(a) == set(b), a["id"]
        if "error" not in a:
            assert a["model"] == b["model"]
            assert [x["task"] for x in a["assessments"]] == [x["task"] for x in b["assessments"]], a["id"]
            for x, y in zip(a["assessments"], b["assessments"], strict=True):
                # two engines with other batches and prefix-cache histories round bf16 differently, which can flip
                # a post the model is uncertain about (seen once, on an AMX machine: DR p1 "no" in-process, "yes"
                # served); a decision that either run is sure of (a one-label set) must be the same
                assert x["label"] == y["label"] or (x["label"] in y["label_set"] and y["label"] in x["label_set"]), \
                    (a["id"], x["task"], x["label"], x["label_set"], y["label"], y["label_set"])
