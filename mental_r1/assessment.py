"""One assessment request: a text and its tasks → the object POST /assess answers with (schemas.AssessResponse).

The route (app/routes.py) and the batch command (`mental-r1 assess`, app/cli.py) both call `assess_request`,
so a line of batch output and an `/assess` response are built by the same code and cannot drift. What belongs
to HTTP stays there: admission, the deadline, disconnects, status codes and metrics. Failures are the domain
exceptions of mental_r1/errors.py (vLLM's own exceptions are translated), never HTTP errors.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from mental_r1.assessor import Assessor, GenerationOptions
from mental_r1.errors import InvalidText, engine_failure
from mental_r1.safety import CrisisResources, safety_block
from mental_r1.schemas import AssessResponse, ModelInfo, Usage
from mental_r1.screen.model import ModelScreen
from mental_r1.tasks import get_task


def check_length(text: str, max_chars: int) -> None:
    """The character limit on a text (the service's max_text_chars): InvalidText beyond it."""
    if len(text) > max_chars:
        raise InvalidText(f"text is {len(text)} characters; the limit is {max_chars}")


async def assess_request(assessor: Assessor, text: str, task_ids: list[str], opts: GenerationOptions, *,
                         model: ModelInfo, resources: CrisisResources, locale: str | None = None,
                         model_screen: ModelScreen | None = None, request_id: str | None = None,
                         started: float | None = None,
                         on_task: Callable[[str, float], None] | None = None) -> AssessResponse:
    """Every task assessed concurrently with the crisis screen's model source (whatever the tasks), then the
    safety block and the response around them.

    `started`: the time.perf_counter() the request arrived at (default: now), for `latency_ms`; `on_task(task id,
    seconds)` is called as each task finishes (the service's per-task latency metric). Raises the domain
    exceptions of mental_r1/errors.py for the engine's failures."""
    t0 = time.perf_counter() if started is None else started
    rid = request_id or uuid.uuid4().hex

    async def one(i: int, task_id: str):
        t = time.perf_counter()
        a = await assessor.assess(text, get_task(task_id), opts, f"{rid}-{i}")
        if on_task is not None:
            on_task(task_id, time.perf_counter() - t)
        return a

    async def risk():
        if model_screen is None:
            return {}
        return await assessor.risk_probabilities(text, model_screen.tasks, f"{rid}-screen")

    try:
        *assessments, risk_probabilities = await asyncio.gather(*(one(i, t) for i, t in enumerate(task_ids)), risk())
    except Exception as e:
        if (failure := engine_failure(e)) is not None:
            raise failure from None
        raise
    safety = safety_block(text, assessments, resources, locale, risk_probabilities, model_screen)
    usage = Usage(prompt_tokens=sum(a.usage.prompt_tokens for a in assessments),
                  completion_tokens=sum(a.usage.completion_tokens for a in assessments))
    return AssessResponse(assessments=assessments, safety=safety, model=model, usage=usage,
                          latency_ms=round((time.perf_counter() - t0) * 1000, 1))
