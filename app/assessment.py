"""One assessment request, from a validated AssessRequest to the response object of POST /assess.

The route (app/routes.py) and the batch command (`mental-r1 assess`, app/cli.py) both call
`assess_request`, so a line of batch output and an `/assess` response are built by the same code and
cannot drift. The route adds what belongs to HTTP: admission, the deadline, disconnects, metrics.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from app import metrics
from app.errors import ServiceError
from app.safety import CrisisResources, safety_block
from mental_r1.assessor import Assessor, GenerationOptions
from mental_r1.schemas import AssessRequest, AssessResponse, ModelInfo, Usage
from mental_r1.screen.model import ModelScreen
from mental_r1.tasks import get_task


def check_length(text: str, max_chars: int) -> None:
    """The service's character limit on a text (a 422)."""
    if len(text) > max_chars:
        raise ServiceError(422, f"text is {len(text)} characters; the limit is {max_chars}")


async def assess_request(assessor: Assessor, body: AssessRequest, resources: CrisisResources,
                         model: ModelInfo, model_screen: ModelScreen | None = None,
                         request_id: str | None = None) -> AssessResponse:
    """Every requested task assessed concurrently with the crisis screen's model source (whatever the tasks),
    then the safety block and the response around them."""
    t0 = time.perf_counter()
    opts = GenerationOptions(max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p,
                             seed=body.seed)
    rid = request_id or uuid.uuid4().hex

    async def one(i: int, task_id: str):
        t = time.perf_counter()
        a = await assessor.assess(body.text, get_task(task_id), opts, f"{rid}-{i}")
        metrics.TASK_LATENCY.labels(task_id).observe(time.perf_counter() - t)
        return a

    async def risk():
        if model_screen is None:
            return {}
        return await assessor.risk_probabilities(body.text, model_screen.tasks, f"{rid}-screen")

    *assessments, risk_probabilities = await asyncio.gather(*(one(i, t) for i, t in enumerate(body.task_ids)),
                                                            risk())
    safety = safety_block(body.text, assessments, resources, body.locale, risk_probabilities, model_screen)
    usage = Usage(prompt_tokens=sum(a.usage.prompt_tokens for a in assessments),
                  completion_tokens=sum(a.usage.completion_tokens for a in assessments))
    return AssessResponse(assessments=assessments, safety=safety, model=model, usage=usage,
                          latency_ms=round((time.perf_counter() - t0) * 1000, 1))
