"""Hostile input and hostile clients against the real service (`python -m app`, real vLLM engine on a tiny
random model with the real tokenizer, production mode with API keys and an ops port: the shared `tiny_server`,
tests/app/conftest.py; marked slow), and the same cases against the same app on a fake engine
(fast; see the `svc` fixture).

Cases are generated per category from a seeded RNG (categories, not particular strings): long non-English
and mixed-script posts, digit and symbol runs, invisible and control characters, lone surrogates, injected
special tokens (the tokenizer's own added-token list), unknown and hostile task ids, wrong types, nested and
malformed JSON, hostile headers and auth, chunked and slow bodies, odd methods and paths, idle and
trickling connections, and many of them at once. Every case asserts: no 5xx (503 only from admission
control, with Retry-After), an answer within its deadline, no request text echoed in an error, and at
the end no traceback, no request text and no 500 in the service's log and metrics.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import random
import threading
import time
from contextlib import ExitStack

import httpx
import pytest

from mental_r1.schemas import AssessResponse
from mental_r1.tasks import TASKS

from .conftest import (
    API_KEY,
    TINY_BODY_TIMEOUT_S,
    TINY_HEADER_TIMEOUT_S,
    TINY_MAX_TEXT_CHARS,
    free_port,
    tiny_service_env,
)
from .fake_service import app_on, wait_ready
from .test_server import connect, request, response, seconds_until_closed
from .threaded_server import serving

RNG = random.Random(14)
MAX_CHARS = TINY_MAX_TEXT_CHARS
SHORT = {"max_tokens": 32}
HEADER_TIMEOUT, BODY_TIMEOUT = TINY_HEADER_TIMEOUT_S, TINY_BODY_TIMEOUT_S
SEEN_TEXT: list[str] = []  # sentinels sent in requests: none may reach the log
ECHO = 24  # an unknown task id is named back by at most this many characters (app.protocol.short_repr)


# the engine case gets `tiny_server` from getfixturevalue: uses_server tells conftest's ordering hook, so
# the test that kills it (test_faults) runs after these
@pytest.fixture(scope="module", params=[
    pytest.param("engine", marks=[pytest.mark.slow, pytest.mark.uses_server("tiny_server")]), "fake-engine"])
def svc(request):
    """`engine`: the shared `tiny_server` (`python -m app` on a tiny random model: real vLLM engine, real
    tokenizer). `fake-engine`: the same app and server configuration in this process, the real Assessor (real
    tokenizer) on a fake engine (tests/fake_engine.py): a fast run of every case that does not depend on what
    the model generates."""
    if request.param == "engine":
        yield request.getfixturevalue("tiny_server")
        return
    with InThreadService(tiny_service_env(), request.getfixturevalue("tokenizer")) as srv:
        # it shares this process's Prometheus registry: 500s counted by earlier test modules are not ours
        srv.server_errors_before = server_errors(httpx.get(f"{srv.ops_url}/metrics", timeout=30).text)
        yield srv


class InThreadService:
    """The app of create_app on a fake engine, served in a thread with app.server's uvicorn configuration
    (tests/app/threaded_server.py), with conftest.Server's interface; its log lines are collected."""

    def __init__(self, env: dict[str, str], tokenizer):
        from app.settings import Settings

        self.settings = Settings(**{k.removeprefix("MENTAL_R1_").lower(): v for k, v in env.items()},
                                 port=free_port())
        self.tokenizer, self.port = tokenizer, self.settings.port
        self.url, self.ops_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.settings.ops_port}"
        self.lines: list[str] = []
        self.proc = self  # poll(): the server is in this process, alive

    def poll(self):
        return None

    def client(self, key: str | None = API_KEY, timeout: float = 300) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"} if key else {},
                            timeout=timeout)

    def logs(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self):
        from tests.fake_engine import FakeEngine

        app = app_on(FakeEngine(self.tokenizer), self.settings)
        self.stack = ExitStack()
        self.stack.enter_context(serving(app, self.settings))
        wait_ready(app)
        handler = logging.Handler()
        handler.emit = lambda record: self.lines.append(logging.Formatter().format(record))
        for lg in (logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access", "app")):
            lg.addHandler(handler)
            self.stack.callback(lg.removeHandler, handler)
        return self

    def __exit__(self, *exc):
        self.stack.close()


def sentinel() -> str:
    s = f"Qx{RNG.randrange(10**8):08d}q"
    SEEN_TEXT.append(s)
    return s


def check(r: httpx.Response, sent: str | None = None, ok: tuple[int, ...] = ()) -> None:
    """The properties every answer has: no 5xx but admission's 503, the error envelope, no echoed text."""
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    if ok:
        assert r.status_code in ok, (r.status_code, r.text[:300])
    if sent:
        assert r.status_code == 200 or sent not in r.text, f"request text echoed: {r.text[:300]}"
    if r.request.method == "HEAD":
        return
    if not r.headers.get("content-type", "").startswith("application/json"):
        # not JSON: the web page and its assets (GET /, /static/...), uvicorn's own answers (a malformed
        # request, too many connections), the app's slash redirect
        page = r.status_code == 200 and (r.request.url.path == "/" or r.request.url.path.startswith("/static/"))
        assert page or r.status_code in (307, 400, 503), (r.status_code, r.text[:300])
        if page:
            assert r.headers.get("x-content-type-options") == "nosniff"
        return
    assert r.headers.get("x-content-type-options") == "nosniff" and r.headers.get("cache-control") == "no-store"
    assert r.status_code != 503 or "retry-after" in r.headers
    if r.status_code == 200 and r.request.url.path == "/assess":
        body = AssessResponse.model_validate(r.json())
        assert all(a.label in TASKS[a.task].label_names for a in body.assessments)
    elif r.status_code >= 400:
        assert r.json()["error"]["type"] and r.content.isascii(), r.text[:300]


def assess(c: httpx.Client, body, *, sent: str | None = None, ok: tuple[int, ...] = (), **kw) -> httpx.Response:
    t0 = time.monotonic()
    if isinstance(body, dict | list):
        r = c.post("/assess", json=body, **kw)
    else:  # raw bytes, or an iterator of chunks (sent chunked)
        r = c.post("/assess", content=body, headers={"content-type": "application/json", **kw.pop("headers", {})},
                   **kw)
    assert time.monotonic() - t0 < 90, "no answer within 90 s"
    check(r, sent, ok)
    return r


# ------------------------------------------------------------------------------------------ text content
SCRIPTS = {  # code-point ranges of scripts that tokenize to several tokens per character
    "cyrillic": (0x0410, 0x044F), "devanagari": (0x0905, 0x0939), "cjk": (0x4E00, 0x9FFF),
    "arabic": (0x0627, 0x064A), "hangul": (0xAC00, 0xD7A3), "thai": (0x0E01, 0x0E2E),
    "emoji": (0x1F600, 0x1F64F), "math-alnum": (0x1D400, 0x1D6A5), "greek": (0x0391, 0x03C9),
}


def script_text(script: str, n: int) -> str:
    lo, hi = SCRIPTS[script]
    words = ("".join(chr(RNG.randint(lo, hi)) for _ in range(RNG.randint(1, 8))) for _ in range(n))
    return " ".join(words)[:n]


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_long_posts_in_any_script_get_an_assessment_or_a_422_that_says_how_long(svc, script):
    with svc.client() as c:
        for n in (RNG.randint(500, 1500), RNG.randint(2000, 3000), MAX_CHARS - len(s := sentinel()) - 1):
            text = script_text(script, n)[: n] + " " + s
            r = assess(c, {"text": text, "tasks": RNG.sample(list(TASKS), 2), **SHORT}, sent=s, ok=(200, 422))
            if r.status_code == 422:
                msg = r.json()["error"]["message"]
                assert "tokens of text" in msg and "characters of this text" in msg, msg


@pytest.mark.parametrize("kind", ["digits", "one-char", "punctuation", "mixed-scripts", "whitespace", "url-like"])
def test_runs_of_digits_symbols_and_mixed_scripts(svc, kind):
    makers = {
        "digits": lambda n: "".join(RNG.choice("0123456789") for _ in range(n)),
        "one-char": lambda n: RNG.choice("a9.!ж中😢") * n,
        "punctuation": lambda n: "".join(RNG.choice("!?.,;:-_()[]{}<>|/\\'\"`~@#$%^&*+=") for _ in range(n)),
        "mixed-scripts": lambda n: "".join(script_text(RNG.choice(list(SCRIPTS)), 20) for _ in range(n // 20)),
        "whitespace": lambda n: "I feel low." + "".join(RNG.choice(" \t\n\r\u00a0\u2003") for _ in range(n)),
        "url-like": lambda n: ("https://example.com/" + "a/" * n)[:n],
    }
    with svc.client() as c:
        for n in (50, 1000, MAX_CHARS - 20):
            s = sentinel()
            assess(c, {"text": s + makers[kind](n)[: MAX_CHARS - 20], **SHORT}, sent=s, ok=(200, 422))


@pytest.mark.parametrize("chars", [
    "\u200b\u200c\u200d\u2060\ufeff",  # zero-width
    "\u202e\u202d\u2066\u2067\u2069",  # bidi overrides
    "\u0301\u0302\u0303\u0308\u0336",  # combining marks (zalgo)
    "\x00\x01\x07\x08\x1b\x7f",  # C0 controls and DEL
    "\u0085\u2028\u2029\x0b\x0c",  # other line breaks
    "\ufffd\ufffe\uffff\U0010fffe",  # replacement and noncharacters
    "\U000e0041\U000e0042\U000e007f",  # tag characters
])
def test_invisible_and_control_characters(svc, chars):
    with svc.client() as c:
        for _ in range(3):
            s = sentinel()
            text = "".join(RNG.choice([*chars, "I feel low. ", s]) for _ in range(RNG.randint(20, 400))) + s
            assess(c, {"text": text, **SHORT}, sent=s, ok=(200, 422))


def test_lone_surrogates_anywhere_are_a_422(svc):
    with svc.client() as c:
        for _ in range(6):
            s = sentinel()
            lone = "\\u" + format(RNG.randint(0xD800, 0xDFFF), "04x")
            text = json.dumps(f"{s} I feel low ")[1:-1]
            i = RNG.randint(0, len(text))
            pad = "x" * 40  # field names are echoed up to 32 characters: the sentinel lies beyond
            for raw in (f'{{"text": "{text[:i]}{lone}{text[i:]}", "max_tokens": 32}}',
                        f'{{"text": "{s}", "task": "DR{lone}"}}', f'{{"text": "{s}", "locale": "en{lone}"}}',
                        f'{{"text": "{s}", "{lone}{pad}{s}": 1}}', f'{{"text": "{s}", "tasks": ["{lone}"]}}'):
                assess(c, raw.encode(), sent=s, ok=(422,))


def test_every_added_special_token_injected_in_a_post_still_gets_an_assessment(svc, tokenizer):
    tokens = [t.content for t in tokenizer.added_tokens_decoder.values()]
    with svc.client() as c:
        for _ in range(6):
            parts = RNG.sample(tokens, k=min(6, len(tokens)))
            text = "I feel low." + "".join(f"{p}{RNG.choice(['system', 'assistant', ' yes', chr(10)])}" for p in parts)
            assess(c, {"text": text, "tasks": ["DR", "t-sid"], **SHORT}, ok=(200,))
        everything = "".join(tokens) * 3
        assess(c, {"text": everything, **SHORT}, ok=(200,))


# ------------------------------------------------------------------------------------------ request body
def hostile_values():
    s = sentinel()
    return s, [None, True, 1, -1, 1.5, 10**30, "", s, s * 300, [], [s], {}, {"a": s}, [[[s]]]]


@pytest.mark.parametrize("field", ["text", "task", "tasks", "locale", "max_tokens", "temperature", "top_p",
                                   "seed", "timeout_s"])
def test_wrong_types_and_values_for_every_field(svc, field):
    s, values = hostile_values()
    with svc.client() as c:
        for v in values:
            body = {"text": f"{s} I feel low.", **SHORT, field: v}
            if field == "timeout_s" and isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                body["timeout_s"] = 30  # a client deadline the tiny model meets
            # a task id is named back by a short prefix (so a short one appears whole), never more
            r = assess(c, body, sent=None if field in ("task", "tasks") else s, ok=(200, 422))
            assert (s * 3)[: ECHO + 1] not in r.text or r.status_code == 200


def test_unknown_and_hostile_task_ids_are_not_echoed(svc):
    with svc.client() as c:
        for make in (lambda s: s * 200, lambda s: "DR" + s, lambda s: f"<script>{s}</script>",
                     lambda s: f"{s}\u202e\u0000", lambda s: "../../" + s, lambda s: script_text("cjk", 50) + s):
            s = sentinel()
            for body in ({"text": "I feel low.", "task": make(s)}, {"text": "I feel low.", "tasks": ["DR", make(s)]}):
                r = assess(c, body, ok=(422,))
                assert (s * 3)[: ECHO + 1] not in r.text and len(r.text) < 1500


@pytest.mark.parametrize("raw", [
    b"[" * 20000 + b"]" * 20000,  # deep nesting
    b'{"text": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    b'{"text": "I feel low.", "max_tokens": 1' + b"0" * 5000 + b"}",  # an integer over Python's digit limit
    b'{"text": "I feel low.", "temperature": NaN}', b'{"text": "I feel low.", "temperature": Infinity}',
    b'{"text": "I feel low.", "max_tokens": 1e400}',
    b'{"text": "a", "text": "b", "text": "c"}',  # duplicate keys
    b'\xef\xbb\xbf{"text": "I feel low."}',  # UTF-8 BOM
    b'{"text": "I feel low."} trailing', b'{"text": "I feel low."', b"", b"null", b"\x00" * 100,
    b'{"text": "\xff\xfe\xc3\x28"}',  # invalid UTF-8
    b'{"text": "' + "é".encode("utf-16-le") + b'"}',
])
def test_malformed_and_nested_json(svc, raw):
    with svc.client() as c:
        assess(c, raw, ok=(200, 400, 413, 422))


def test_bodies_over_the_limit_declared_or_chunked_are_413(svc):
    s = sentinel()
    big = json.dumps({"text": s + "a" * 70_000}).encode()

    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    with svc.client() as c:
        assess(c, big, sent=s, ok=(413,))
        assess(c, chunks(), sent=s, ok=(413,))


def test_stalled_and_trickling_bodies_get_408_and_the_connection_closed(svc):
    for trickle in (False, True):
        with connect(svc.port) as sock:
            sock.sendall(f"POST /assess HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {API_KEY}\r\n"
                         "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n".encode() + b'{"text": "')
            if trickle:
                def drip(sock=sock):
                    try:
                        for _ in range(50):
                            sock.sendall(b"a")
                            time.sleep(0.2)
                    except OSError:
                        pass

                threading.Thread(target=drip, daemon=True).start()
            t0 = time.monotonic()
            r = response(sock)
            assert r.status == 408 and time.monotonic() - t0 < BODY_TIMEOUT + 3
            assert seconds_until_closed(sock, 10) < 10


# ------------------------------------------------------------------------------ headers, auth, methods, paths
def test_huge_and_many_headers_are_refused_and_the_service_stays_up(svc):
    cases = ["X-Big: " + "a" * 20_000 + "\r\n", "".join(f"X-H{i}: {i}\r\n" for i in range(3000)),
             "Cookie: " + "; ".join(f"c{i}={'v' * 50}" for i in range(500)) + "\r\n"]
    for headers in cases:
        with connect(svc.port) as sock:
            r = request(sock, "/livez", headers=headers)
            assert r.status in (400, 431) and r.getheader("connection") == "close"
    with connect(svc.port) as sock, pytest.raises(OSError):  # megabytes of a never-ending header: cut off
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Huge: ")
        for _ in range(8 * 64):
            sock.sendall(b"a" * 16384)
    with svc.client() as c:
        check(c.get("/livez"), ok=(200,))


def test_hostile_authorization_headers(svc):
    s = sentinel()
    values = [b"Bearer", b"Basic " + s.encode(), b"Bearer " + s.encode() * 300,
              b"Bearer \xff\xfe" + s.encode(), b"bearer " + API_KEY.encode() + b"x", b"Bearer\t" + s.encode(),
              b"Bearer " + API_KEY.encode()[:-1]]
    for v in values:
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            r = c.post("/assess", json={"text": "I feel low.", **SHORT}, headers={"Authorization": v})
        check(r, s, ok=(400, 401, 431))
    with httpx.Client(base_url=svc.url, timeout=60) as c:
        r = c.post("/assess", json={"text": "I feel low.", **SHORT},
                   headers=[("Authorization", f"Bearer {s}"), ("Authorization", f"Bearer {API_KEY}")])
    check(r, s, ok=(200, 401))


def test_odd_methods_and_paths(svc):
    paths = ["/assess/", "//assess", "/assess%00", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
             "/" + "a" * 8000, "/assess?" + "q=" + "x" * 8000, "/tasks?x=\u00e9", "/livez/../readyz",
             "/metrics", "/docs", "/openapi.json", "/redoc"]
    with svc.client() as c:
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"):
            check(c.request(method, "/assess"))
        for p in paths:
            # 200: httpx normalises /livez/../readyz; 307: /assess/ is redirected to /assess
            check(c.get(p), ok=(200, 307, 400, 404, 405, 414, 431))
    with httpx.Client(base_url=svc.ops_url, timeout=30) as ops:  # the ops endpoints are on the ops port only
        assert ops.get("/metrics").status_code == 200 and ops.get("/openapi.json").status_code == 200
        assert ops.post("/assess", json={"text": "x"}).status_code == 404


# ------------------------------------------------------------------------------------ connections and load
def test_idle_and_trickling_connections_are_cut_and_do_not_block_others(svc):
    idle = [connect(svc.port) for _ in range(20)]
    trickling = [connect(svc.port) for _ in range(10)]
    for sock in trickling:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n")
    with svc.client() as c:  # a well-behaved client is served meanwhile
        assess(c, {"text": "I feel low.", **SHORT}, ok=(200,))
    took = [seconds_until_closed(s, HEADER_TIMEOUT + 10) for s in idle + trickling]
    assert max(took) <= HEADER_TIMEOUT + 3, took
    for s in idle + trickling:
        s.close()


def test_a_crowd_of_hostile_and_ordinary_requests_at_once(svc):
    """Hostile requests from every category above, 40 at once, alongside ordinary ones: only 200, 4xx and
    admission's 503 come back, each within its deadline, and the ordinary requests that got in are answered."""
    s = sentinel()
    bodies = ([{"text": script_text(RNG.choice(list(SCRIPTS)), RNG.randint(100, MAX_CHARS - 20)) + s, **SHORT}
               for _ in range(12)]
              + [f'{{"text": "{s}\\ud800"}}'.encode(), b"[" * 20000, {"text": s, "task": "t" * ECHO + s * 50},
                 {"text": s, "tasks": list(TASKS)[:8], **SHORT}, {"text": s, "max_tokens": "32"}] * 4
              + [{"text": "Work has been hard lately.", **SHORT}] * 8)
    RNG.shuffle(bodies)

    def send(body):
        with svc.client() as c:
            return assess(c, body, sent=s if not isinstance(body, dict) or "Work" not in body["text"] else None)

    with cf.ThreadPoolExecutor(40) as pool:
        got = list(pool.map(send, bodies))
    assert {r.status_code for r in got} <= {200, 400, 413, 422, 503}
    assert any(r.status_code == 200 for r in got)


# --------------------------------------------------------------------------------------------- the aftermath
def server_errors(metrics: str) -> float:
    """Requests answered 500, summed over tasks, from a /metrics text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("mental_r1_requests_total{") and 'status="500"' in line)


def test_zzz_logs_and_metrics_after_the_suite(svc):
    """Runs last in the module (pytest keeps file order): nothing above left a trace it should not have. With the
    real engine the log and the 500 count are the shared server's whole life, other modules' requests included."""
    with httpx.Client(base_url=svc.ops_url, timeout=30) as ops:
        m = ops.get("/metrics").text
    assert server_errors(m) == getattr(svc, "server_errors_before", 0.0)
    logs = svc.logs()
    assert "POST /assess" in logs  # the log is being captured
    for bad in ("Traceback", "Exception in ASGI application", "unhandled ", "Zebra-sentinel"):
        assert bad not in logs, bad
    leaked = [t for t in SEEN_TEXT if t in logs]
    assert not leaked, leaked[:5]
    assert svc.proc.poll() is None
