"""The app's routes and hostile-input handling on a fake engine: the real app (create_app) and the real Assessor
with the real tokenizer, the engine replaced by tests/fake_engine.py (the `fake_app` and `fake_engine`
fixtures), through Starlette's TestClient. The same properties against the real service:
tests/app/test_bad_input.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

import pytest
from fastapi.testclient import TestClient

from app.middleware import SECURITY_HEADERS

from .fake_service import ready_client, until_ready

SECRET = "Zebra-sentinel-7731"
KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"
HASHES = ",".join(hashlib.sha256(k.encode()).hexdigest() for k in (KEY_A, KEY_B))


def post(c, body, key=None, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, bytes):
        return c.post("/assess", content=body, headers={"content-type": "application/json", **headers}, **kw)
    return c.post("/assess", json=body, headers=headers, **kw)


def assert_envelope(r, status, type_=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and (type_ is None or err["type"] == type_)
    assert r.content.isascii()
    return err


# ------------------------------------------------------------------------------------- unexpected errors
def test_unexpected_error_is_a_500_envelope_logged_by_type_only(fake_app, fake_engine, caplog):
    app = fake_app()
    caplog.set_level(logging.DEBUG)
    # raise_server_exceptions=True (the default): the test fails if the exception is re-raised to the server
    with ready_client(app) as c:
        fake_engine.fail = RuntimeError(f"boom while reading {SECRET}")
        r = post(c, {"text": f"{SECRET} I feel low"})
        after = c.get("/livez")
    assert_envelope(r, 500, "internal_error")
    assert SECRET not in r.text and after.status_code == 200
    logged = [rec for rec in caplog.records if "RuntimeError" in rec.getMessage()]
    assert [rec.getMessage() for rec in logged] == ["unhandled RuntimeError in POST /assess"]
    assert all(rec.exc_info is None for rec in caplog.records)  # no traceback anywhere
    assert SECRET not in caplog.text


def test_engine_validation_errors_are_4xx_without_their_message(fake_app, fake_engine):
    from vllm.exceptions import VLLMValidationError

    app = fake_app()
    err = VLLMValidationError("The decoder prompt (length 3000) is longer than the maximum model length",
                              parameter="prompt", value=SECRET)
    with ready_client(app) as c:
        fake_engine.fail = err
        r = post(c, {"text": "hi"})
    assert_envelope(r, 422, "invalid_request")
    assert SECRET not in r.text and "VLLMValidationError" in r.text


# ---------------------------------------------------------------------------------- token budget, Unicode
@pytest.mark.parametrize("text", [
    "Я уже несколько недель нормально не сплю, и ничего больше не кажется стоящим. " * 50,
    "我已经好几个星期没有好好睡觉了，什么事情都觉得不值得做。" * 140,
    "9" * 3999,
])
def test_text_over_the_token_budget_is_a_422_that_says_how_long_it_may_be(fake_app, fake_engine, text):
    app = fake_app()
    with ready_client(app) as c:
        r = post(c, {"text": text[:4000], "tasks": ["DR", "SAD"]})
    err = assert_envelope(r, 422, "invalid_request")
    assert "tokens of text" in err["message"] and "characters of this text" in err["message"]
    assert text[:12] not in r.text and not fake_engine.requests  # refused before any engine work


def test_reasoning_budget_is_shortened_to_fit(fake_app, fake_engine):
    app = fake_app()
    german = "Ich habe seit Wochen nicht richtig geschlafen und nichts fühlt sich mehr lohnenswert an. " * 45
    with ready_client(app) as c:
        r = post(c, {"text": german[:4000], "max_tokens": 384})
    assert r.status_code == 200, r.text
    (generation,) = fake_engine.generations()
    assert 32 <= generation.params.max_tokens < 384  # the budget the engine was asked for


@pytest.mark.parametrize("raw", [
    rb'{"text": "\ud800 I feel low"}', rb'{"text": "I feel \udfff"}', rb'{"text": "\udc00\ud800"}',
])
def test_lone_surrogates_are_a_422(fake_app, raw):
    app = fake_app()
    with ready_client(app) as c:
        r = post(c, raw)
    err = assert_envelope(r, 422, "invalid_request")
    assert "invalid Unicode" in err["message"]


def test_hostile_field_names_and_task_ids_are_not_echoed(fake_app):
    app = fake_app()
    long_key = "k" * 10_000 + "\ud800"
    many = {f"field{i}": i for i in range(2000)}
    with ready_client(app) as c:
        extra = post(c, json.dumps({"text": "hi", long_key: 1}).encode())
        flood = post(c, {"text": "hi", **many})
        task = post(c, {"text": "hi", "task": SECRET * 100})
    assert_envelope(extra, 422)
    assert len(extra.text) < 1000 and "k" * 40 not in extra.text
    assert len(flood.json()["error"]["details"]) == 10 and len(flood.text) < 3000
    assert_envelope(task, 422)
    assert SECRET[:10] in task.text and SECRET * 2 not in task.text and len(task.text) < 600


# ------------------------------------------------------------------------------------------ label sets
def test_assess_returns_the_label_set_and_says_when_it_is_uncertain(fake_app, fake_engine):
    app = fake_app()  # a label-set threshold of 0.35 for every task (fake_service.CALIBRATION)
    with ready_client(app) as c:
        fake_engine.probabilities = {"DR": {"yes": 0.9, "no": 0.1}}
        sure = post(c, {"text": "hi", "task": "DR"}).json()["assessments"][0]
        fake_engine.probabilities = {"DR": {"yes": 0.55, "no": 0.45}}
        both = post(c, {"text": "hi", "task": "DR"}).json()["assessments"][0]
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    assert sure["label_set"] == [sure["label"]] and sure["uncertain"] is None
    assert both["label_set"] == ["yes", "no"] and both["uncertain"] == "uncertain between yes and no"
    documented = next(v for k, v in schema.items() if k.startswith("TaskAssessment"))["properties"]
    assert {"label_set", "uncertain"} <= set(documented)


# ------------------------------------------------------------------- engine failures, deadline, disconnect
def test_a_dead_engine_is_a_503_and_turns_livez_red(fake_app, fake_engine):
    from vllm.v1.engine.exceptions import EngineDeadError

    app = fake_app()
    with ready_client(app) as c:
        fake_engine.fail = EngineDeadError()
        r = post(c, {"text": "hi"})
        live, again = c.get("/livez"), post(c, {"text": "hi"})
    err = assert_envelope(r, 503, "unavailable")
    assert err["message"] == "the inference engine has failed; the service needs a restart"
    assert r.headers["retry-after"] == "5" and live.status_code == 503 and again.status_code == 503


def test_a_full_engine_queue_is_vllms_own_status_with_retry_after(fake_app, fake_engine):
    from vllm.exceptions import QueueOverflowError

    app = fake_app()
    with ready_client(app) as c:
        fake_engine.fail = QueueOverflowError()
        r = post(c, {"text": "hi"})
        live = c.get("/livez")
    assert assert_envelope(r, 503, "unavailable")["message"] == QueueOverflowError().message
    assert r.headers["retry-after"] == "5" and live.status_code == 200  # busy, not dead


def test_the_deadline_is_a_504_and_cancels_the_work(fake_app, fake_engine):
    app = fake_app(request_timeout_s=5)
    with ready_client(app) as c:
        fake_engine.delay = 30
        r = post(c, {"text": "hi", "timeout_s": 0.2})
    assert assert_envelope(r, 504, "timeout")["message"] == "assessment exceeded its 0.2 s deadline"
    (generation,) = fake_engine.requests  # the reasoning, cancelled: the scoring never started
    assert fake_engine.cancelled == [generation.request_id] and app.state.in_flight == 0


def test_a_client_that_disconnects_is_a_499_and_its_work_is_cancelled(fake_app, fake_engine):
    from prometheus_client import REGISTRY

    app = fake_app()
    sent = []

    async def run():
        body = [{"type": "http.request", "body": b'{"text": "hi"}', "more_body": False}]

        async def receive():  # the body, then the client is gone once its assessment is under way
            if body:
                return body.pop(0)
            while not fake_engine.running:
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/assess", "raw_path": b"/assess", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        async with app.router.lifespan_context(app):
            await until_ready(app)
            fake_engine.delay = 30
            await app(scope, receive, send)

    aborted = REGISTRY.get_sample_value("mental_r1_aborted_total") or 0.0
    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert start["status"] == 499 and body["error"]["type"] == "client_closed"
    (generation,) = fake_engine.requests
    assert fake_engine.cancelled == [generation.request_id] and app.state.in_flight == 0
    assert REGISTRY.get_sample_value("mental_r1_aborted_total") == aborted + 1


# -------------------------------------------------------------------------------- admission, rate limit
def test_admission_counts_tasks(fake_app):
    app = fake_app(max_queued_requests=4)
    with ready_client(app) as c:
        app.state.in_flight = 2  # two tasks of other requests are running
        three = post(c, {"text": "hi", "tasks": ["DR", "SAD", "CAMS"]})
        two = post(c, {"text": "hi", "tasks": ["DR", "SAD"]})
        app.state.in_flight = 0
        five = post(c, {"text": "hi", "tasks": ["DR", "SAD", "CAMS", "t-sid", "loneliness"]})
        after = app.state.in_flight
    assert_envelope(three, 503, "unavailable")
    assert three.headers["retry-after"]
    assert two.status_code == 200
    assert "at most 4 at once" in assert_envelope(five, 422)["message"]  # could never be admitted
    assert after == 0


def test_a_dataset_id_is_assessed_as_all_of_its_tasks_and_admitted_as_them(fake_app, fake_engine):
    app = fake_app(max_queued_requests=4)
    with ready_client(app) as c:
        irf = post(c, {"text": "hi", "tasks": ["Irf", "DR", "Irf:perceived_burdensomeness"]})
        single = post(c, {"text": "hi", "task": "Irf"})
        app.state.in_flight = 3  # room for one task: Irf is two
        full = post(c, {"text": "hi", "tasks": ["Irf"]})
        app.state.in_flight = 0
        six = post(c, {"text": "hi", "tasks": ["MultiWD"]})
        unknown = post(c, {"text": "hi", "tasks": ["Irf:"]})
    assert irf.status_code == 200, irf.text
    assert [a["task"] for a in irf.json()["assessments"]] == [
        "Irf:thwarted_belongingness", "Irf:perceived_burdensomeness", "DR"]
    assert [a["task"] for a in single.json()["assessments"]] == [
        "Irf:thwarted_belongingness", "Irf:perceived_burdensomeness"]
    assert_envelope(full, 503, "unavailable")
    assert "6 tasks in one request" in assert_envelope(six, 422)["message"]
    assert "unknown task 'Irf:'" in assert_envelope(unknown, 422)["message"]
    irf = ["Irf:thwarted_belongingness", "Irf:perceived_burdensomeness"]
    assert sorted(r.task for r in fake_engine.generations()) == sorted([*irf, "DR", *irf])  # 5 tasks reasoned


def test_per_key_rate_limit_counts_tasks_and_answers_429_with_retry_after(fake_app):
    app = fake_app(api_key_hashes=HASHES, rate_limit_per_minute=3)
    with ready_client(app) as c:
        a = [post(c, {"text": "hi", "tasks": ["DR", "SAD"]}, KEY_A), post(c, {"text": "hi"}, KEY_A),
             post(c, {"text": "hi"}, KEY_A)]
        b = post(c, {"text": "hi"}, KEY_B)
        unauthenticated = post(c, {"text": "hi"})
    assert [r.status_code for r in a[:2]] == [200, 200]
    err = assert_envelope(a[2], 429, "rate_limited")
    assert "3 tasks per minute" in err["message"] and 1 <= int(a[2].headers["retry-after"]) <= 20
    assert b.status_code == 200  # another key has its own budget
    assert unauthenticated.status_code == 401


# ----------------------------------------------------------------------------------------- request body
def test_oversized_chunked_body_is_413_not_400(fake_app):
    app = fake_app(max_body_bytes=4096)

    def chunks():
        yield b'{"text": "'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}'

    with ready_client(app) as c:
        r = c.post("/assess", content=chunks(), headers={"content-type": "application/json"})
        declared = post(c, b'{"text": "' + b"a" * 5000 + b'"}')
    for resp in (r, declared):
        assert_envelope(resp, 413, "payload_too_large")
        assert resp.headers["connection"] == "close"


# ------------------------------------------------------------------------------ headers, ops endpoints
def test_security_headers_on_every_response(fake_app, fake_engine):
    app = fake_app(max_body_bytes=1024)
    with ready_client(app) as c:
        responses = [post(c, {"text": "hi"}), c.get("/tasks"), c.get("/nope"), post(c, {"text": ""}),
                     post(c, b"x" * 2000), c.get("/metrics")]
        fake_engine.fail = ValueError("x")
        responses.append(post(c, {"text": "hi"}))
    assert [r.status_code for r in responses] == [200, 200, 404, 422, 413, 200, 500]
    for r in responses:
        for name, value in SECURITY_HEADERS:
            assert r.headers[name.decode()] == value.decode()
        assert r.headers["cache-control"] == "no-store"


OPS = ["/metrics", "/openapi.json", "/docs", "/redoc"]


def test_production_without_ops_port_serves_no_ops_endpoints(fake_app):
    app = fake_app(env="production", api_key_hashes=HASHES)
    with TestClient(app) as c:
        assert [c.get(p).status_code for p in OPS] == [404] * 4
        assert c.get("/livez").status_code == 200 and c.get("/tasks").status_code == 200


def test_development_serves_ops_endpoints_on_the_api_port(fake_app):
    app = fake_app()
    with TestClient(app) as c:
        assert [c.get(p).status_code for p in OPS] == [200] * 4


@pytest.mark.parametrize("env", ["development", "production"])
def test_ops_port_alone_serves_ops_endpoints(fake_app, env):
    # TestClient's requests arrive on port 80: ops_port=80 makes them ops-port requests, 8080 API-port ones
    on_ops = fake_app(env=env, api_key_hashes=HASHES, port=8000, ops_port=80)
    on_api = fake_app(env=env, api_key_hashes=HASHES, port=80, ops_port=8080)
    with TestClient(on_ops) as c:
        assert [c.get(p).status_code for p in OPS] == [200] * 4
        assert c.get("/livez").status_code == 404 and post(c, {"text": "hi"}, KEY_A).status_code == 404
    with TestClient(on_api) as c:
        assert [c.get(p).status_code for p in OPS] == [404] * 4
        assert c.get("/livez").status_code == 200


# ------------------------------------------------------------------------------ readiness and shutdown
def test_a_failed_health_check_is_a_503_but_does_not_kill_the_engine(fake_app, fake_engine):
    app = fake_app()
    with ready_client(app) as c:
        fake_engine.health_failures = [TimeoutError(), RuntimeError("transient")]
        first, second, third = c.get("/readyz"), c.get("/readyz"), c.get("/readyz")
        assessed, live = post(c, {"text": "hi"}), c.get("/livez")
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["retry-after"] and not app.state.engine_dead
    assert assessed.status_code == 200 and live.status_code == 200


def test_engine_dead_error_in_the_health_check_is_fatal(fake_app, fake_engine):
    from vllm.v1.engine.exceptions import EngineDeadError

    app = fake_app()
    with ready_client(app) as c:
        fake_engine.health_failures = [EngineDeadError()]
        assert c.get("/readyz").status_code == 503
        assert c.get("/readyz").status_code == 503 and c.get("/livez").status_code == 503
        assert_envelope(post(c, {"text": "hi"}), 503)
    assert app.state.engine_dead


def test_a_shutdown_signal_turns_readyz_and_assess_into_503(fake_app):
    import signal

    from app.server import DrainingServer, server_config
    from app.settings import Settings

    app = fake_app()
    with ready_client(app) as c:
        assert c.get("/readyz").status_code == 200
        server = DrainingServer(server_config(app, Settings()))
        server.config.load()  # what uvicorn does before serving: wraps the app in its own middleware
        server.handle_exit(signal.SIGTERM, None)
        r, assessed, live = c.get("/readyz"), post(c, {"text": "hi"}), c.get("/livez")
    assert server.should_exit
    assert assert_envelope(r, 503)["message"] == "draining" and r.headers["retry-after"]
    assert assert_envelope(assessed, 503)["message"] == "shutting down" and live.status_code == 200


@pytest.mark.parametrize("drain", [0.0, 2.5])
def test_engine_shutdown_is_bounded_by_the_drain_timeout(fake_app, fake_engine, drain):
    app = fake_app(drain_timeout_s=drain)
    with ready_client(app):
        pass
    assert fake_engine.shutdown_timeouts == [drain]


# ------------------------------------------------------------------------------------- model identity
def test_the_untrained_base_model_is_named_as_such(base_model_dir, tmp_path):
    from mental_r1.base_model import UNTRAINED_NAME
    from mental_r1.loading import model_info

    assert model_info(base_model_dir, None).name == UNTRAINED_NAME == "SmolLM2-135M-Instruct (untrained base model)"
    assert model_info(base_model_dir, "mine").name == "mine"  # --model-name wins
    (tmp_path / "config.json").write_text("{}")
    assert model_info(tmp_path, None).name == tmp_path.name  # any other checkpoint: its folder name


def test_request_text_is_not_logged_on_success_or_refusal(fake_app, caplog):
    caplog.set_level(logging.DEBUG)
    app = fake_app(max_text_chars=200)
    with ready_client(app) as c:
        ok, too_long = post(c, {"text": f"{SECRET} I feel low"}), post(c, {"text": SECRET + " x" * 200})
    assert ok.status_code == 200 and too_long.status_code == 422
    assert caplog.records and SECRET not in caplog.text
