"""The crisis screen's model source with a real engine: a service whose thresholds flag every post (0.0),
so every response shows the model's risk probabilities, on a handful of real t-sid posts, with the caller
asking only for DR. The service is the shared `flag_all_server` (tests/app/conftest.py)."""

from __future__ import annotations

import json

import pytest

from mental_r1.screen.model import MODEL_SCREEN

from .test_service import SHORT, metric

pytestmark = pytest.mark.slow


def test_model_source_gives_both_risk_probabilities_when_only_dr_is_asked(flag_all_server, data_dir):
    from mental_r1.data import load_split

    rows = [e for e in load_split(data_dir, "test", ["t-sid"]) if len(e.text) < 1000]
    posts = [next(e for e in rows if e.label == lab).text
             for lab in ("suicide or self-harm tendency", "no mental disorders", "depression", "PTSD")]
    got = []
    with flag_all_server.client(key=None) as c:
        for text in posts:
            r = c.post("/assess", json={"text": text, "task": "DR", **SHORT})
            assert r.status_code == 200, r.text
            safety = r.json()["safety"]
            model = {s["task"]: s for s in safety["signals"] if s["source"] == "model"}
            assert set(model) == set(MODEL_SCREEN), safety
            for task, s in model.items():
                assert s["method"] == "screen" and s["level"] == "concern" and 0.0 <= s["probability"] <= 1.0
                assert s["category"] == MODEL_SCREEN[task][1]
            assert safety["level"] in ("concern", "crisis") and safety["crisis"] and safety["resources"]
            got.append({t: s["probability"] for t, s in model.items()})
            assert text[:40] not in json.dumps(safety)
        again = c.post("/assess", json={"text": posts[0], "task": "DR", **SHORT}).json()["safety"]
        m = c.get("/metrics").text
    assert {s["task"]: s["probability"] for s in again["signals"] if s["source"] == "model"} == \
        pytest.approx(got[0], abs=1e-3)  # label scoring is deterministic
    assert len({tuple(sorted(g.items())) for g in got}) > 1  # the probability depends on the post
    assert metric(m, "mental_r1_safety_flags_total", source="model", level="concern") >= len(posts)
    logs = flag_all_server.logs()
    assert "provisional" in logs  # the service says the thresholds were not measured
    assert not any(p[:40] in logs for p in posts)
