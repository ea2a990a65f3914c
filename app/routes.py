"""HTTP routes: POST /assess, GET /tasks, /livez, /readyz (and /health).

POST /assess is admit (`_admit`: cheap checks before any engine work) → run under a deadline (`_run`: the
core's assess_request, cancelled on disconnect) → record (app/metrics.py); every failure is answered through
app.errors.service_error."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.errors import RETRY_AFTER, ClientDisconnected, ServiceError, service_error
from app.protocol import AssessRequest, ErrorResponse, TaskInfo
from app.ratelimit import retry_after
from mental_r1.assessment import assess_request, check_length
from mental_r1.errors import EngineDead, engine_failure
from mental_r1.schemas import AssessResponse
from mental_r1.tasks import TASKS, get_task

log = logging.getLogger(__name__)
router = APIRouter()


def require_api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> str | None:
    """Bearer API key, compared as SHA-256 digests in constant time (keys are stored hashed). Returns the
    matching hash (the caller's identity for rate limiting), or None when no keys are configured."""
    hashes = request.app.state.settings.key_hashes
    if not hashes:
        return None
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ServiceError(401, "missing API key: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})
    digest = hashlib.sha256(key.strip().encode()).hexdigest()
    matches = [secrets.compare_digest(digest, h) for h in hashes]  # check every hash: no early exit
    if not any(matches):
        raise ServiceError(401, "invalid API key", {"WWW-Authenticate": "Bearer"})
    return hashes[matches.index(True)]


ApiKey = Annotated[str | None, Depends(require_api_key)]


async def _until_disconnect(request: Request) -> None:
    """Return when the client goes away (the body has already been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


# every status /assess can answer with, so the OpenAPI schema documents them (400: a body that is not
# decodable JSON, e.g. invalid UTF-8; found by tests/app/test_fuzz.py)
_ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 408, 413, 422, 429, 431, 500, 503, 504)}


def _admit(state, settings, body: AssessRequest, key: str | None) -> None:
    """Checks before any engine work, cheapest first (each answers with its own 4xx/503)."""
    n = len(body.task_ids)
    check_length(body.text, settings.max_text_chars)
    if n > settings.max_queued_requests:
        raise ServiceError(422, f"{n} tasks in one request; this service runs at most "
                                f"{settings.max_queued_requests} at once: send fewer tasks per request")
    if state.engine_dead:
        raise ServiceError(503, "the inference engine has failed; the service needs a restart", RETRY_AFTER)
    if not state.ready or state.draining:
        raise ServiceError(503, "the model is not ready yet" if not state.draining else "shutting down",
                           RETRY_AFTER)
    for t in body.task_ids:  # the token budget (tokenizer only; ContextOverflow): assess() shortens it the same way
        state.assessor.reasoning_budget(body.text, get_task(t), body.max_tokens)
    if state.in_flight + n > settings.max_queued_requests:  # admission counts tasks, not requests
        raise ServiceError(503, "too many assessments in flight; retry later", RETRY_AFTER)
    # last: only a request that will run takes from its key's budget
    if state.rate_limiter is not None and (wait := state.rate_limiter.take(key or "", n)):
        raise ServiceError(429, f"rate limit of {settings.rate_limit_per_minute} tasks per minute reached",
                           retry_after(wait))


async def _run(request: Request, body: AssessRequest, started: float) -> AssessResponse:
    """The assessment, under the request's deadline, cancelled when the client goes away (cancelling the
    generate() iterators aborts the vLLM requests); its tasks count as in flight meanwhile."""
    state, settings = request.app.state, request.app.state.settings
    n = len(body.task_ids)
    state.in_flight += n
    metrics.IN_FLIGHT.inc()
    try:
        work = asyncio.ensure_future(assess_request(
            state.assessor, body.text, body.task_ids, body.generation_options(), model=state.model_info,
            resources=state.resources, locale=body.locale, model_screen=state.model_screen,
            request_id=uuid.uuid4().hex, started=started,
            on_task=lambda task, s: metrics.TASK_LATENCY.labels(task).observe(s)))
        watch = asyncio.ensure_future(_until_disconnect(request))
        timeout = min(body.timeout_s or settings.request_timeout_s, settings.request_timeout_s)
        done, _pending = await asyncio.wait({work, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        watch.cancel()
        if work in done:
            return work.result()
        work.cancel()
        if watch in done:
            raise ClientDisconnected
        raise ServiceError(504, f"assessment exceeded its {timeout:g} s deadline")
    finally:
        state.in_flight -= n
        metrics.IN_FLIGHT.dec()


@router.post("/assess", response_model=AssessResponse, responses=_ERRORS)
async def assess(request: Request, body: AssessRequest, key: ApiKey):
    """Assess a text for one or more IMHI tasks: label, confidence, appraisal stages, safety content."""
    state = request.app.state
    t0 = time.perf_counter()
    status = 500  # unless answered otherwise: an unexpected error (app.errors.UnexpectedErrors)
    try:
        _admit(state, state.settings, body, key)
        response = await _run(request, body, t0)
        status = 200
    except Exception as e:
        if (error := service_error(e)) is None:
            raise
        if isinstance(e, EngineDead):
            state.engine_dead, state.ready = True, False
        status = error.status
        raise error from None
    finally:
        metrics.record_request(body.task_ids, status, time.perf_counter() - t0)
    metrics.record_response(response)
    return response


@router.get("/tasks", response_model=list[TaskInfo])
async def tasks():
    """The tasks this service assesses, with their questions and label sets."""
    return [TaskInfo(id=t.id, dataset=t.dataset, question=t.question,
                     labels={lab.short: lab.text for lab in t.labels}) for t in TASKS.values()]


@router.get("/livez")
async def livez(request: Request):
    """Process liveness: fails only when the engine has died (a restart is the fix)."""
    if request.app.state.engine_dead:
        raise ServiceError(503, "inference engine died")
    return {"status": "alive"}


@router.get("/readyz")
@router.get("/health", include_in_schema=False)
async def readyz(request: Request):
    """Ready when the engine has loaded, answered a warm-up assessment and is not draining. A slow or failed
    health check is a 503 for now; only the engine's death (vLLM's EngineDeadError) marks it dead (→ /livez 503,
    restart)."""
    state = request.app.state
    if state.load_error:
        raise ServiceError(503, f"model failed to load: {state.load_error}", RETRY_AFTER)
    if state.draining:
        raise ServiceError(503, "draining", RETRY_AFTER)
    if not state.ready:
        raise ServiceError(503, "loading model", RETRY_AFTER)
    try:
        await asyncio.wait_for(state.engine.check_health(), timeout=1.0)
    except Exception as e:  # noqa: BLE001 - a timeout or transient failure: not ready now, maybe next probe
        if isinstance(engine_failure(e), EngineDead):
            state.engine_dead, state.ready = True, False
            raise ServiceError(503, "inference engine is not healthy", RETRY_AFTER) from None
        log.warning("engine health check failed: %s", type(e).__name__)
        raise ServiceError(503, "inference engine did not answer its health check", RETRY_AFTER) from None
    return {"status": "ready", "model": state.model_info.model_dump()}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics():
    """Prometheus exposition: mental_r1_* service metrics and vLLM's own vllm:* engine metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
