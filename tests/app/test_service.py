"""End-to-end: the real service (vLLM engine, embedded default model) answers real requests.

The service is the shared `server` (tests/app/conftest.py). The SIGTERM drain test stops it, so it is marked
`stops_server` and runs after every other test that uses it.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import signal
import threading
import time

import httpx
import pytest

from mental_r1.calibration import load_calibration
from mental_r1.contract import STAGES
from mental_r1.default_model import ensure_default_model
from mental_r1.loading import model_info
from mental_r1.schemas import AssessResponse, uncertainty_note
from mental_r1.tasks import TASKS

from .conftest import SECRET_TEXT

pytestmark = pytest.mark.slow
SHORT = {"max_tokens": 32}  # the smallest reasoning budget, for the tests that do not read the reasoning


def test_probes_before_and_after_load(server):
    early = server.early
    assert early["readyz"].status_code == 503 and early["readyz"].headers["retry-after"]
    assert early["readyz"].json()["error"]["message"] == "loading model"
    assert early["livez"].status_code == 200
    assert early["assess"].status_code == 503 and "retry-after" in early["assess"].headers
    with server.client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200
        expected = model_info(ensure_default_model(), None)  # the embedded default model
        assert ready.json()["model"] == expected.model_dump()
        assert c.get("/livez").json() == {"status": "alive"}


def test_assess_returns_a_full_assessment(server):
    with server.client() as c:
        r = c.post("/assess", json={"text": "Work has been crushing me and I barely sleep.", "task": "dreaddit",
                                    **SHORT})
    assert r.status_code == 200, r.text
    body = AssessResponse.model_validate(r.json())
    (a,) = body.assessments
    task = TASKS["dreaddit"]
    assert a.task == "dreaddit" and a.label in task.label_names
    assert a.label_text == task.label(a.label).text
    assert set(a.probabilities) == set(task.label_names)
    assert sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert a.confidence == pytest.approx(max(a.probabilities.values()))
    assert a.probabilities[a.label] == a.confidence
    assert [s.name for s in a.stages] == [s.name for s in STAGES]
    assert a.stages[0].title == "Stimulus"
    assert a.format_valid == (a.format_issues == [])
    assert 0 < a.usage.completion_tokens <= 32 * a.usage.reasonings and a.usage.prompt_tokens > 100
    assert "not a diagnosis" in body.safety.disclaimer
    assert "sha256:" in body.model.version and body.latency_ms > 0
    assert set(a.label_logprobs) == set(task.label_names) and all(v <= 0 for v in a.label_logprobs.values())
    # the chosen label's sentence is the mental_state stage the response reports
    assert a.stages[-1].text == a.label_text
    # the label set is the shipped calibration's for these probabilities ([label] without a threshold)
    assert a.label_set == load_calibration(ensure_default_model()).label_set("dreaddit", a.probabilities)
    assert a.label_set[0] == a.label and a.uncertain == uncertainty_note(a.label_set)


def test_the_default_model_is_the_trained_mental_r1_and_follows_the_format(server, data_dir):
    """The README's serve command serves the shipped Mental-R1-135M, and it writes the five-stage format on
    real test posts (default settings, one task per post: the post's own dataset)."""
    from mental_r1.data import load_split

    posts = [next(e for e in load_split(data_dir, "test", [name]) if len(e.text) < 1500)
             for name in ("DR", "dreaddit", "SAD", "Irf", "t-sid")]
    with server.client() as c:
        assert c.get("/readyz").json()["model"]["name"] == "Mental-R1-135M"
        with cf.ThreadPoolExecutor(4) as pool:  # the fixture admits 4 requests in flight
            got = list(pool.map(lambda e: c.post("/assess", json={"text": e.text, "task": e.task.id}), posts))
    assert all(r.status_code == 200 for r in got), [r.text[:200] for r in got]
    valid = [r.json()["assessments"][0]["format_valid"] for r in got]
    assert sum(valid) >= 4, [r.json()["assessments"][0]["format_issues"] for r in got]
    for r in got:
        stages = {s["name"]: s["text"] for s in r.json()["assessments"][0]["stages"]}
        assert all(stages.values()) or not r.json()["assessments"][0]["format_valid"]


def test_several_tasks_in_one_request(server):
    with server.client() as c:
        r = c.post("/assess", json={"text": "I keep worrying about money and my family.",
                                    "tasks": ["SAD", "MultiWD:social", "t-sid"], **SHORT})
    assert r.status_code == 200, r.text
    got = r.json()["assessments"]
    assert [a["task"] for a in got] == ["SAD", "MultiWD:social", "t-sid"]
    for a in got:
        assert a["label"] in TASKS[a["task"]].label_names
        assert len(a["probabilities"]) == len(TASKS[a["task"]].labels)


def test_explicit_self_harm_statement_gets_crisis_resources(server):
    with server.client() as c:
        us = c.post("/assess", json={"text": SECRET_TEXT, "locale": "en-US", **SHORT}).json()
        gb = c.post("/assess", json={"text": SECRET_TEXT, "locale": "en_GB", **SHORT}).json()
        calm = c.post("/assess", json={"text": "We baked bread and walked the dog today.", **SHORT}).json()
    assert us["safety"]["crisis"] is True and us["safety"]["level"] == "crisis"
    assert {"source": "text", "category": "suicidal_ideation"}.items() <= us["safety"]["signals"][0].items()
    assert any("988" in r["contact"] for r in us["safety"]["resources"])
    assert any("116 123" in r["contact"] for r in gb["safety"]["resources"])
    calm = calm["safety"]
    assert calm["disclaimer"] and all(s["source"] == "model" for s in calm["signals"])  # the text raises nothing
    assert calm["crisis"] == (calm["level"] != "none") == bool(calm["resources"])  # the model source may flag it


@pytest.mark.parametrize("text", [  # the kind of post issue 12 found unflagged, paraphrased
    "I'm about to start cutting my wrist again, I can't stop myself",
    "I really want to die. Next chance I get I will try.",
    "I just need to die",
    "Why am I still alive? Nothing changes",
    "This life is not worth living",
])
def test_indirect_posts_are_flagged_when_only_dr_is_requested(server, text):
    with server.client() as c:
        r = c.post("/assess", json={"text": text, "task": "DR", "locale": "en-US", **SHORT})
    assert r.status_code == 200, r.text
    safety = r.json()["safety"]
    assert safety["level"] == "crisis" and safety["crisis"] is True and safety["resources"]
    assert any(s["source"] == "text" for s in safety["signals"])
    assert text not in json.dumps(safety)


@pytest.mark.parametrize("payload, fragment", [
    ({"text": ""}, "text is empty"),
    ({"text": " \n\t "}, "text is empty"),
    ({"text": "x" * 2001}, "limit is 2000"),
    ({"text": "hi", "task": "nope"}, "unknown task"),
    ({"text": "hi", "tasks": ["MultiWD", "Irf", "DR"]}, "at most 8"),  # 9 tasks once dataset ids are expanded
    ({"text": "hi", "task": "DR", "tasks": ["SAD"]}, "either 'task' or 'tasks'"),
    ({"text": 42}, "valid string"),
    ({"text": "hi", "max_tokens": 10_000}, "max_tokens"),
    ({"text": "hi", "surprise": True}, "Extra inputs"),
    ({}, "text: Field required"),
])
def test_invalid_requests_get_422_with_a_message(server, payload, fragment):
    with server.client() as c:
        r = c.post("/assess", json=payload)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request" and fragment in err["message"]


def test_malformed_bodies(server):
    with server.client() as c:
        bad_json = c.post("/assess", content=b'{"text": ', headers={"content-type": "application/json"})
        huge = c.post("/assess", content=b'{"text": "' + b"a" * 200_000 + b'"}',
                      headers={"content-type": "application/json"})
        bad_utf8 = c.post("/assess", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["error"]["message"]
    assert huge.status_code == 413 and "exceeds" in huge.json()["error"]["message"]
    assert bad_utf8.status_code == 400 and bad_utf8.json()["error"]["type"] == "bad_request"


def test_api_key_required(server):
    with server.client(key=None) as c:
        missing = c.post("/assess", json={"text": "hi"})
    with server.client(key="wrong-key") as c:
        wrong = c.post("/assess", json={"text": "hi"})
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]["message"]
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_deadline_gives_504(server):
    with server.client() as c:
        r = c.post("/assess", json={"text": "A long day.", "timeout_s": 0.05, "max_tokens": 256})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"


def test_queue_full_gives_503(server):
    # the test server admits 4 requests in flight; 6 arrive at once
    def call(_):
        with server.client() as c:
            return c.post("/assess", json={"text": "Exams are next week.", **SHORT}).status_code

    with cf.ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(call, range(6)))
    assert codes == [200] * 4 + [503] * 2


def metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_disconnect_aborts_generation(server):
    with server.client() as c:
        before = metric(c.get("/metrics").text, "mental_r1_aborted_total")
    with pytest.raises(httpx.ReadTimeout), server.client(timeout=1.0) as c:
        c.post("/assess", json={"text": "I feel tired of everything.", "max_tokens": 512})
    deadline = time.time() + 30
    with server.client() as c:
        while time.time() < deadline:
            m = c.get("/metrics").text
            if metric(m, "mental_r1_aborted_total") > before and metric(m, "vllm:num_requests_running") == 0:
                break
            time.sleep(0.5)
    assert metric(m, "mental_r1_aborted_total") == before + 1
    assert metric(m, "vllm:num_requests_running") == 0


def test_metrics_and_tasks(server):
    with server.client() as c:
        m = c.get("/metrics")
        tasks = c.get("/tasks").json()
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    assert metric(m.text, "mental_r1_requests_total", task="dreaddit", status="200") >= 1
    assert metric(m.text, "mental_r1_requests_total", task="DR", status="503") >= 1
    assert metric(m.text, "mental_r1_request_duration_seconds_count") >= 1
    assert metric(m.text, "mental_r1_crisis_flags_total", signal="suicidal_ideation") >= 1
    assert metric(m.text, "mental_r1_safety_flags_total", source="text", level="crisis") >= 1
    assert "Zebra" not in m.text and "kill myself" not in m.text  # no text in metric labels
    assert re.search(r"^mental_r1_labels_total\{", m.text, re.MULTILINE)
    assert "vllm:num_requests_running" in m.text  # vLLM's own metrics, same registry
    assert {t["id"] for t in tasks} == set(TASKS)
    dr = next(t for t in tasks if t["id"] == "DR")
    assert dr["labels"]["yes"] == "Yes, the poster suffers from depression."


def test_openapi_lists_assess(server):
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    assert "/assess" in spec["paths"] and "AssessRequest" in json.dumps(spec)


def test_request_text_never_reaches_the_logs(server):
    sentinel = f"Quokka-sentinel-{time.time_ns()}"  # this test's own: passes alone, not thanks to earlier tests
    with server.client() as c:
        ok = c.post("/assess", json={"text": f"{sentinel} I want to kill myself tonight", **SHORT})
        too_long = c.post("/assess", json={"text": sentinel + " x" * 1500, **SHORT})  # 422 path too
    assert ok.status_code == 200 and too_long.status_code == 422
    time.sleep(0.5)  # let the access log line land
    logs = server.logs()
    assert logs.count("POST /assess") >= 2  # the log is being captured
    assert sentinel not in logs and "Quokka" not in logs and "kill myself" not in logs


@pytest.mark.stops_server
def test_sigterm_drains_in_flight_requests_then_exits(server):
    result = {}

    def call():
        with server.client() as c:
            result["r"] = c.post("/assess", json={"text": "Slept badly again.", "max_tokens": 128})

    t = threading.Thread(target=call)
    t.start()
    time.sleep(1.5)  # the request is in flight
    server.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result["r"].status_code == 200, result["r"].text
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, hence -SIGTERM, not a crash
    assert server.proc.wait(120) in (0, -signal.SIGTERM)
    logs = server.logs()
    assert "Application shutdown complete" in logs and "Finished server process" in logs
    assert "Zebra-sentinel" not in logs
