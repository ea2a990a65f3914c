"""A fake engine behind the real app: routes, auth, validation and the error envelope run as in the service,
the assessments come from the text alone (no model), instantly."""

from __future__ import annotations

import asyncio
import hashlib
import math

import app.main as app_main
from app.main import create_app
from app.settings import Settings
from mental_r1.calibration import label_set
from mental_r1.contract import STAGES
from mental_r1.schemas import ModelInfo, StageText, TaskAssessment, Usage

from .conftest import API_KEY

MODEL = ModelInfo(name="fake", version="0+sha256:0")


class FakeAssessor:
    """Deterministic assessments from the text alone (no engine); a text saying "slow" takes 3 s. Label sets at
    a threshold of 0.35: both labels of a yes/no task (0.6 and 0.4), the label alone for more labels."""

    def reasoning_budget(self, text, task, requested):
        return requested

    async def assess(self, text, task, opts, request_id=None):
        await asyncio.sleep(3 if "slow" in text else 0)
        n = len(task.labels)
        label = task.label_names[len(text) % n]
        probs = {lab: 0.6 if lab == label else 0.4 / (n - 1) for lab in task.label_names}
        return TaskAssessment(
            task=task.id, question=task.question, label=label, label_text=task.label(label).text,
            confidence=probs[label], probabilities=probs, label_logprobs={k: math.log(v) for k, v in probs.items()},
            label_set=label_set(probs, 0.35),
            stages=[StageText(name=s.name, title=s.title, text=None if s.name == "reaction" else f"{s.title}.")
                    for s in STAGES],
            format_valid=False, format_issues=["missing stage reaction"], usage=Usage(prompt_tokens=9, completion_tokens=3))


class FakeEngine:
    async def check_health(self):
        return None

    def shutdown(self, timeout=None):
        pass


def fake_service_app(monkeypatch, **settings):
    """The real app whose lifespan "loads" the fake assessor; the test API key is configured unless
    `api_key_hashes` says otherwise."""
    async def fake_load(app, _settings):
        app.state.engine, app.state.assessor, app.state.model_info = FakeEngine(), FakeAssessor(), MODEL
        app.state.ready = True

    monkeypatch.setattr(app_main, "_load", fake_load)
    return create_app(Settings(**{"api_key_hashes": hashlib.sha256(API_KEY.encode()).hexdigest(), **settings}))
