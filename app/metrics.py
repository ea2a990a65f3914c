"""Prometheus metrics of the service. They live in the default registry next to vLLM's own `vllm:*`
metrics (registered by AsyncLLM in this process), so GET /metrics exposes both."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
