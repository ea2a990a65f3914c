"""The FastAPI app factory. The vLLM engine is built in the lifespan (in the background, so /livez and
/readyz answer while the model loads), never at import; it lives on `app.state`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.errors import UnexpectedErrors, install_error_handlers
from app.middleware import OpsEndpoints, RequestLimits, SecurityHeaders
from app.page import router as page_router
from app.ratelimit import RateLimiter
from app.routes import router
from app.settings import Settings
from mental_r1.assessor import Assessor, GenerationOptions
from mental_r1.safety import CrisisResources

log = logging.getLogger(__name__)
WARMUP_TEXT = "Today was an ordinary day at work."


def load_served_model(settings: Settings) -> Assessor:
    """The service's model: the checkpoint of `settings.model` (default: the embedded default model) on a new
    vLLM engine (mental_r1/loading.py). Blocking, for tens of seconds."""
    from mental_r1.loading import load_assessor

    return load_assessor(settings.model, settings.engine_limits, name=settings.model_name)


async def _load(app: FastAPI, settings: Settings, load: Callable[[Settings], Assessor]) -> None:
    """Load the model with `load`, warm it up with one real assessment, then mark the service ready."""
    from mental_r1.screen.model import load_model_screen
    from mental_r1.tasks import DEFAULT_TASK, get_task

    state = app.state
    try:
        t0 = time.perf_counter()
        # in a thread: engine start-up takes tens of seconds, and probes and signals must be answered meanwhile
        state.assessor = await asyncio.to_thread(load, settings)
        state.engine, state.model_info = state.assessor.engine, state.assessor.model
        state.model_screen = load_model_screen(state.model_info.name, state.model_info.version,
                                               settings.screen_thresholds_file)
        await state.assessor.assess(WARMUP_TEXT, get_task(DEFAULT_TASK), GenerationOptions(max_tokens=8))
        state.ready = True
        log.info("model %s %s ready in %.1f s", state.model_info.name, state.model_info.version,
                 time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - surfaced through /readyz and the log, the process stays up
        state.load_error = f"{type(e).__name__}: {e}"
        log.error("engine failed to load: %s", state.load_error)


def create_app(settings: Settings | None = None,
               load: Callable[[Settings], Assessor] = load_served_model) -> FastAPI:
    """The service. `load(settings)` returns the Assessor to serve (blocking; run in a thread by the lifespan,
    then warmed up): the real model by default, an Assessor on a fake engine in the tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.settings = settings
        state.resources = CrisisResources.from_file(settings.crisis_resources_file)
        state.ready = state.draining = state.engine_dead = False
        state.engine = state.assessor = state.load_error = state.model_info = state.model_screen = None
        state.in_flight = 0  # assessment tasks, not requests
        state.rate_limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
        loader = asyncio.create_task(_load(app, settings, load))
        try:
            yield
        finally:
            state.draining, state.ready = True, False
            loader.cancel()
            if state.engine is not None:
                # in-flight requests were drained by uvicorn already; bounded like the drain (docs/deployment.md)
                state.engine.shutdown(timeout=settings.drain_timeout_s)

    app = FastAPI(
        title="Mental-R1 assessment API",
        version="0.1.0",
        description="Reasoning-based mental-health assessment for research and screening support. "
                    "Not a diagnosis; a qualified human must review every output.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(page_router)  # GET /: the web page (app/static/)
    # innermost first: the request limits, then ops routing, the catch-all for errors, the security headers
    app.add_middleware(RequestLimits, header_limit=settings.max_header_bytes, body_limit=settings.max_body_bytes,
                       body_timeout_s=settings.body_timeout_s)
    app.add_middleware(OpsEndpoints, ops_port=settings.ops_port, production=settings.env == "production")
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(SecurityHeaders)
    return app
