"""Prometheus metrics of the service. They live in the default registry next to vLLM's own `vllm:*`
metrics (registered by AsyncLLM in this process), so GET /metrics exposes both."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from mental_r1.schemas import AssessResponse, Safety

REQUESTS = Counter("mental_r1_requests", "Assessment requests by task and HTTP status.", ["task", "status"])
LATENCY = Histogram("mental_r1_request_duration_seconds", "POST /assess latency.",
                    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256))
TASK_LATENCY = Histogram("mental_r1_task_duration_seconds", "One task's generation + scoring.", ["task"],
                         buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256))
LABELS = Counter("mental_r1_labels", "Labels returned.", ["task", "label"])
CRISIS = Counter("mental_r1_crisis_flags", "Responses flagged as crisis, by signal.", ["signal"])
FORMAT_INVALID = Counter("mental_r1_format_invalid", "Completions that broke the stage format.", ["task"])
IN_FLIGHT = Gauge("mental_r1_requests_in_flight", "Assessment requests being processed.")
ABORTED = Counter("mental_r1_aborted", "Requests aborted because the client disconnected.")
SAFETY_FLAGS = Counter("mental_r1_safety_flags", "Responses the crisis screen flagged, by source (text, model) and "
                       "the highest level that source raised (concern, crisis).", ["source", "level"])


def record_request(task_ids: list[str], status: int, seconds: float) -> None:
    """One POST /assess answered with `status` after `seconds` (admission included)."""
    for t in task_ids:
        REQUESTS.labels(t, str(status)).inc()
    LATENCY.observe(seconds)
    if status == 499:
        ABORTED.inc()


def record_response(response: AssessResponse) -> None:
    """What a 200 answered: labels, broken formats and the crisis screen's flags (bounded labels, never text)."""
    record_safety(response.safety)
    for a in response.assessments:
        LABELS.labels(a.task, a.label).inc()
        if not a.format_valid:
            FORMAT_INVALID.labels(a.task).inc()


def record_safety(safety: Safety) -> None:
    """Flags by source (text, model) at the highest level that source raised, and by category."""
    for source in ("text", "model"):
        levels = {s.level for s in safety.signals if s.source == source}
        if levels:
            SAFETY_FLAGS.labels(source, "crisis" if "crisis" in levels else "concern").inc()
    for category in sorted({s.category for s in safety.signals}):
        CRISIS.labels(category).inc()
